//! Deployment as the README describes it, with the real tools: the Debian package (built by
//! `scripts/package.sh`, checked by lintian, unpacked where the unit expects its files), the nginx
//! config from the README in front of the supervisor with TLS, and the container image built and
//! run by podman against the fake camera.

use nvr_tests::fakecam::{workspace_root, FakeCam, FakeCamOpts};
use nvr_tests::nvr::{bin, camera_config, free_port, hash_password, wait_until, Nvr, TempDir};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn the_debian_package_passes_lintian_and_its_files_land_where_the_unit_expects_them() {
    let dir = TempDir::new("deb");
    let made = ok(Command::new("bash")
        .arg(workspace_root().join("scripts/package.sh"))
        .arg(dir.path().join("out"))
        .current_dir(workspace_root()));
    let deb = PathBuf::from(made.lines().last().unwrap().trim());
    assert!(deb.is_file(), "{made}");

    let lint = run(Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(&deb));
    let report = text(&lint.stdout);
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
        .collect();
    assert!(
        problems.is_empty() && lint.status.success(),
        "lintian: {problems:#?}\n{}",
        text(&lint.stderr)
    );

    let root = dir.path().join("root");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let conffiles = ok(Command::new("dpkg-deb")
        .args(["-I"])
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/nvr/cameras.json");
    let depends = ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"));
    for lib in ["libavcodec", "libavformat", "libc6"] {
        assert!(depends.contains(lib), "Depends: {depends}");
    }

    // The unit's ExecStart names a binary and a config the package holds.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/nvr.service")).unwrap();
    assert_eq!(
        unit,
        std::fs::read_to_string(workspace_root().join("deploy/nvr.service")).unwrap()
    );
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let words: Vec<&str> = exec.split_whitespace().collect();
    let in_root = |p: &str| root.join(p.trim_start_matches('/'));
    let supervisor = in_root(words[0]);
    let config = in_root(words[words.iter().position(|w| *w == "--config").unwrap() + 1]);
    for b in ["supervisor", "worker", "nvr-preview"] {
        let p = supervisor.with_file_name(b);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o755, 0o755, "{}", p.display());
    }
    let checked = ok(Command::new(&supervisor).arg("check-config").arg(&config));
    assert!(checked.contains("OK: 1 camera(s), 0 enabled"), "{checked}");
    assert_eq!(
        ok(Command::new(&supervisor).arg("--version")),
        ok(Command::new(bin("supervisor")).arg("--version"))
    );
    for doc in [
        "README.md",
        "config.md",
        "copyright",
        "changelog.gz",
        "examples/cameras.json",
    ] {
        assert!(root.join("usr/share/doc/nvr").join(doc).is_file(), "{doc}");
    }

    // systemd-analyze verify of the unit as installed: it checks the binaries exist and are
    // executable, so the copy points them into the unpacked root. It exits 0 even on a line it
    // ignores, so any output fails.
    let verify_dir = dir.path().join("verify");
    std::fs::create_dir_all(&verify_dir).unwrap();
    let lib = in_root("/usr/lib/nvr/");
    std::fs::write(
        verify_dir.join("nvr.service"),
        unit.replace("/usr/lib/nvr/", &lib.display().to_string()),
    )
    .unwrap();
    let verify = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(verify_dir.join("nvr.service")));
    let said = format!("{}{}", text(&verify.stdout), text(&verify.stderr));
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

/// A self-signed certificate for `localhost`: (certificate, key).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("nvr.pem"), dir.join("nvr.key"));
    ok(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (cert, key)
}

/// The nginx config block of the README.
fn readme_nginx_block() -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let after = readme
        .split("<!-- nginx.conf: tests/tests/it/deploy.rs runs this block -->")
        .nth(1)
        .expect("README has no tested nginx block");
    let body = after.split("```nginx\n").nth(1).unwrap();
    body.split("```").next().unwrap().to_string()
}

/// nginx in the foreground with the README's block (its port, the NVR's port and the test's
/// certificate put in), stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path, nvr_port: u16) -> Nginx {
        let (cert, key) = self_signed(dir);
        let port = free_port();
        let block = readme_nginx_block()
            .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
            .replace("127.0.0.1:5001", &format!("127.0.0.1:{nvr_port}"))
            .replace("/etc/ssl/certs/nvr.pem", &cert.display().to_string())
            .replace("/etc/ssl/private/nvr.key", &key.display().to_string());
        assert!(block.contains(&format!("127.0.0.1:{nvr_port}")), "{block}");
        std::fs::write(dir.join("nvr.conf"), &block).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
                 scgi_temp_path {d}/scgi;\n  include {d}/nvr.conf;\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(dir)
            .args(["-e", &format!("{d}/error.log")])
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx (scripts/setup.sh installs it)");
        wait_until(Duration::from_secs(10), "nginx to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Nginx { child, port }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        nvr_tests::nvr::signal(self.child.id(), "QUIT");
        let _ = self.child.wait();
    }
}

/// One request through nginx with curl from `from` (a loopback address): (status, headers, body).
fn curl(
    nginx: &Nginx,
    jar: &Path,
    from: &str,
    path: &str,
    extra: &[&str],
) -> (u16, String, Vec<u8>) {
    let head = jar.with_extension(format!("head-{}", free_port()));
    let out = run(Command::new("curl")
        .args(["-sS", "-k", "--interface", from, "--max-time", "20"])
        .arg("-b")
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .arg("-D")
        .arg(&head)
        .args(extra)
        .arg(format!("https://localhost:{}{path}", nginx.port)));
    let headers = std::fs::read_to_string(&head).unwrap_or_default();
    let _ = std::fs::remove_file(&head);
    let code = headers
        .lines()
        .rev()
        .find(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, headers, out.stdout)
}

#[test]
fn behind_nginx_with_tls_login_live_view_seeking_and_metrics_work_and_logs_name_the_real_client() {
    let password = "proxy-pass-6620";
    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let mut cam = camera_config("door", &fc, "motion/main", "motion/sub");
    cam["motion"] = json!({"post_motion_s": 1});
    cam["recording"] = json!({"pre_roll_s": 2, "post_roll_s": 1});
    let nvr = Nvr::start(
        json!({
            "heartbeat_interval_s": 0.5,
            "api": {
                "auth": {"username": "admin", "password_hash": hash_password(password)},
                "trusted_proxies": ["127.0.0.1"]
            },
            "cameras": [cam]
        }),
        &[],
    );
    let dir = TempDir::new("nginx");
    let nginx = Nginx::start(dir.path(), nvr.port);
    let jar = dir.path().join("cookies");
    // The browser: a client at 127.0.0.5, which nginx forwards from 127.0.0.1.
    let client = "127.0.0.5";
    let origin = format!("Origin: https://localhost:{}", nginx.port);
    let login = |pw: &str| {
        let body = json!({"username": "admin", "password": pw}).to_string();
        curl(
            &nginx,
            &jar,
            client,
            "/api/login",
            &[
                "-H",
                "Content-Type: application/json",
                "-H",
                &origin,
                "--data",
                &body,
            ],
        )
    };
    assert_eq!(curl(&nginx, &jar, client, "/status", &[]).0, 401);
    assert_eq!(login("wrong-guess").0, 401);
    let (code, head, body) = login(password);
    assert_eq!(code, 200, "{head}{}", text(&body));
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(
        cookie.contains("; Secure"),
        "not Secure behind TLS: {cookie}"
    );

    let (code, _, body) = curl(&nginx, &jar, client, "/status", &[]);
    assert_eq!(code, 200, "{}", text(&body));
    let st: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st["cameras"][0]["id"], "door");
    let (code, _, body) = curl(&nginx, &jar, client, "/metrics", &[]);
    assert_eq!(code, 200);
    assert!(text(&body).contains("nvr_"), "{}", text(&body));

    // Live view: the MJPEG stream flows through the proxy as it comes (no buffering).
    let (code, head, body) = curl(
        &nginx,
        &jar,
        client,
        "/api/cameras/door/mjpeg?fps=5",
        &["--max-time", "3"],
    );
    assert_eq!(code, 200, "{head}");
    let jpegs = body.windows(3).filter(|w| w == &[0xff, 0xd8, 0xff]).count();
    assert!(jpegs >= 3, "{jpegs} JPEG frames in 3 s through nginx");

    // Live view as the web UI plays it: the fMP4 WebSocket upgrades through the proxy (the
    // README's `Upgrade` lines, `Host` with its port for the Origin check) and brings the init
    // segment and fragments.
    let upgrade = |origin: &str| {
        curl(
            &nginx,
            &jar,
            client,
            "/api/cameras/door/live?stream=sub",
            &[
                "--http1.1",
                "--max-time",
                "4",
                "-H",
                "Connection: Upgrade",
                "-H",
                "Upgrade: websocket",
                "-H",
                "Sec-WebSocket-Version: 13",
                "-H",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "-H",
                origin,
            ],
        )
    };
    let (code, head, body) = upgrade(&origin);
    assert_eq!(code, 101, "{head}");
    let has = |what: &[u8]| body.windows(what.len()).any(|w| w == what);
    assert!(
        has(b"ftyp") && has(b"moof") && has(b"mdat"),
        "no fMP4 through nginx's WebSocket ({} bytes): {head}",
        body.len()
    );
    // The same upgrade from another site's page is refused before it happens.
    let (code, head, _) = upgrade("Origin: https://evil.example");
    assert_eq!(code, 403, "{head}");

    // Playback with seeking: Range requests of a finished recording, through the proxy.
    let clip = wait_until(Duration::from_secs(60), "a finished recording", || {
        let (_, _, body) = curl(&nginx, &jar, client, "/api/recordings?camera=door", &[]);
        let rows: Value = serde_json::from_slice(&body).ok()?;
        rows.as_array()?
            .iter()
            .find(|r| r["state"] == "finished")
            .cloned()
    });
    let on_disk = std::fs::read(nvr.output_dir().join(clip["path"].as_str().unwrap())).unwrap();
    let file = format!("/api/recordings/{}/file", clip["id"].as_str().unwrap());
    let len = on_disk.len();
    for (range, from, to) in [
        ("bytes=100-1099".to_string(), 100, 1099),
        (format!("bytes={}-", len / 2), len / 2, len - 1),
        ("bytes=-500".to_string(), len - 500, len - 1),
    ] {
        let (code, head, body) = curl(
            &nginx,
            &jar,
            client,
            &file,
            &["-H", &format!("Range: {range}")],
        );
        assert_eq!(code, 206, "{range}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-range: bytes {from}-{to}/{len}")),
            "{range}: {head}"
        );
        assert!(
            body == on_disk[from..=to],
            "{range}: other bytes than the file's"
        );
    }

    // The logs name the client, not the proxy.
    let log = nvr.log_text();
    let mut saw = Vec::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["message"] == "failed login" || v["message"] == "logged in" {
            assert_eq!(v["client"], client, "{line}");
            saw.push(v["message"].as_str().unwrap().to_string());
        }
        assert!(
            !line.contains("came through a proxy") && !line.contains("not in api.trusted_proxies"),
            "{line}"
        );
    }
    assert_eq!(saw, ["failed login", "logged in"], "{log}");
}

#[test]
fn the_container_image_builds_runs_as_non_root_records_and_reports_healthy() {
    let started = Instant::now();
    let root = workspace_root();
    let base = ok(Command::new("bash").arg(root.join("scripts/base-image.sh")));
    let base = base.lines().last().unwrap().trim().to_string();
    let base_s = started.elapsed().as_secs_f64();
    let image = "localhost/nvr:it";
    let podman = || {
        let mut c = Command::new("podman");
        c.current_dir(&root);
        c
    };
    ok(podman()
        .args([
            "build",
            "--runtime",
            "runc",
            "--format",
            "docker",
            "--network",
            "host",
        ])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(["--build-arg", &format!("BASE={base}"), "-t", image, "."]));
    let build_s = started.elapsed().as_secs_f64() - base_s;
    let user = ok(podman().args(["image", "inspect", "--format", "{{.Config.User}}", image]));
    assert_eq!(user.trim(), "nvr");

    let fc = FakeCam::start(FakeCamOpts::scenes(&["motion"])).unwrap();
    let dir = TempDir::new("container");
    let port = free_port();
    let mut cam = camera_config("yard", &fc, "motion/main", "motion/sub");
    cam["motion"] = json!({"post_motion_s": 1});
    cam["recording"] = json!({"pre_roll_s": 2, "post_roll_s": 1});
    let etc = dir.path().join("etc");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        etc.join("cameras.json"),
        json!({
            "output_dir": "/var/lib/nvr/recordings",
            "heartbeat_interval_s": 0.5,
            "api": {"listen": format!("127.0.0.1:{port}")},
            "cameras": [cam]
        })
        .to_string(),
    )
    .unwrap();
    // The image's user owns the recordings volume.
    ok(Command::new("chown").args(["-R", "10001:10001"]).arg(&data));
    let name = format!("nvr-it-{}", std::process::id());
    let _ = run(podman().args(["rm", "-f", &name]));
    ok(podman()
        .args([
            "run",
            "-d",
            "--runtime",
            "runc",
            "--network",
            "host",
            "--name",
            &name,
        ])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(["--shm-size", "256m"])
        .arg("-v")
        .arg(format!("{}:/etc/nvr:ro", etc.display()))
        .arg("-v")
        .arg(format!("{}:/var/lib/nvr", data.display()))
        .arg("--env")
        .arg(format!("NVR_HEALTH_URL=http://127.0.0.1:{port}/health"))
        .arg(image));
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "5", &self.0])
                .output();
        }
    }
    let _remove = Remove(name.clone());
    let logs = || text(&run(podman().args(["logs", &name])).stderr);
    wait_until(
        Duration::from_secs(30),
        "/health 200 from the container",
        || {
            let (code, _) = nvr_tests::nvr::http(port, "GET", "/health").ok()?;
            (code == 200).then_some(())
        },
    );
    let clip = wait_until(
        Duration::from_secs(60),
        "a recording from the container",
        || {
            let (_, body) =
                nvr_tests::nvr::http(port, "GET", "/api/recordings?camera=yard").ok()?;
            let rows: Value = serde_json::from_str(&body).ok()?;
            rows.as_array()?
                .iter()
                .find(|r| r["state"] == "finished")
                .cloned()
        },
    );
    let file = data.join("recordings").join(clip["path"].as_str().unwrap());
    assert!(file.is_file(), "{}", file.display());
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 10001);
    // The image's own HEALTHCHECK, run inside the container.
    let health = run(podman().args(["healthcheck", "run", &name]));
    assert!(
        health.status.success(),
        "healthcheck: {}{}",
        text(&health.stdout),
        text(&health.stderr)
    );
    let uid = ok(podman().args(["exec", &name, "id", "-u"]));
    assert_eq!(uid.trim(), "10001");
    ok(podman().args(["stop", "-t", "20", &name]));
    let code = ok(podman().args(["inspect", "--format", "{{.State.ExitCode}}", &name]));
    assert_eq!(code.trim(), "0", "{}", logs());
    let all_json = logs()
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok());
    assert!(all_json, "{}", logs());
    eprintln!(
        "container test: base image {base_s:.0} s, image build {build_s:.0} s, total {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
