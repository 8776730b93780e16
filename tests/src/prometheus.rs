//! A real Prometheus server (Debian's `prometheus` package) for the metrics tests: started on a
//! free loopback port with a generated config that scrapes one supervisor every second with a
//! bearer token, queried through its HTTP API, and killed when dropped (even when the test fails).

use crate::nvr::{free_port, http, wait_until, TempDir};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Prometheus {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

/// `s` with everything but unreserved characters percent-encoded (for a query string).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// Starts Prometheus scraping `/metrics` of the supervisor on `target_port` with `token`;
    /// waits until its API answers.
    pub fn start(target_port: u16, token: &str) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token).unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: nvr\n    metrics_path: /metrics\n    \
                 authorization:\n      type: Bearer\n      credentials_file: {}\n    \
                 static_configs:\n      - targets: [\"127.0.0.1:{target_port}\"]\n",
                token_file.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect(
                "start prometheus (Debian package `prometheus`, installed by scripts/setup.sh)",
            );
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        wait_until(Duration::from_secs(30), "Prometheus to answer", || {
            http(port, "GET", "/-/ready")
                .ok()
                .filter(|(code, _)| *code == 200)
        });
        p
    }

    /// The result vector of an instant query (`data.result`), or `None` when the query fails.
    pub fn query(&self, promql: &str) -> Option<Vec<Value>> {
        let (code, body) = http(
            self.port,
            "GET",
            &format!("/api/v1/query?query={}", url_encode(promql)),
        )
        .ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v["status"] == "success")
            .then(|| v["data"]["result"].as_array().cloned())
            .flatten()
    }

    /// What Prometheus wrote to stderr.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
