//! The UI's edits on small documents: what is written, what is left alone, what is refused.

use super::*;
use serde_json::json;

const FILE: &str = r#"{
  "_comment": "mine",
  "defaults": { "motion": { "threshold": 25 }, "recording": { "post_roll_s": 8 } },
  "cameras": [
    {
      "_comment": "the door",
      "id": "door",
      "main_url": "rtsp://10.0.0.2/main",
      "password": "hunter2",
      "motion": { "threshold": 40, "zones": [[[0, 0], [1, 0], [1, 1]]] }
    }
  ]
}
"#;

fn env(_: &str) -> Option<String> {
    None
}

fn doc() -> Doc {
    Doc::parse(FILE).unwrap()
}

fn camera_text(d: &Doc, i: usize) -> String {
    match d.get("cameras") {
        Some(Doc::Array(a)) => a[i].print(),
        _ => panic!("no cameras"),
    }
}

#[test]
fn sending_back_what_the_ui_was_shown_changes_nothing() {
    let d = doc();
    let config = validate(&d, &env).unwrap();
    let shown = effective_camera(config.camera("door").unwrap());
    assert_eq!(shown["password"], "***");
    assert_eq!(shown["motion"]["zones"][0]["name"], "zone1");
    let (out, _) = put_camera(&d, "door", &shown, &env).unwrap();
    assert_eq!(out.print(), FILE, "a no-op edit gives the same bytes");
}

#[test]
fn a_field_equal_to_the_default_is_removed_and_others_are_written_in_place() {
    let d = doc();
    let edit = json!({
        "motion": {"threshold": 25, "min_area": 1.5},
        "recording": {"post_roll_s": 8, "pre_roll_s": 2},
        "name": "Door"
    });
    let (out, config) = put_camera(&d, "door", &edit, &env).unwrap();
    let cam = config.camera("door").unwrap();
    assert_eq!(cam.motion.threshold, 25);
    assert_eq!(cam.motion.min_area, 1.5);
    assert_eq!(cam.recording.pre_roll_s, 2.0);
    assert_eq!(cam.name, "Door");
    let text = camera_text(&out, 0);
    assert!(!text.contains("threshold"), "{text}");
    assert!(!text.contains("post_roll_s"), "{text}");
    // Key order: the comment stays first, new keys take their documented place.
    let keys = [
        "_comment",
        "\"id\"",
        "\"name\"",
        "main_url",
        "password",
        "motion",
        "recording",
    ];
    let at: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    // The stored secret is kept (the edit did not name it).
    assert_eq!(cam.password.as_ref().unwrap().expose(), "hunter2");
}

#[test]
fn secrets_sent_back_masked_are_kept_and_new_ones_replace_them() {
    let d = doc();
    let (out, config) = put_camera(&d, "door", &json!({"password": "***"}), &env).unwrap();
    assert_eq!(out, d);
    assert_eq!(
        config
            .camera("door")
            .unwrap()
            .password
            .as_ref()
            .unwrap()
            .expose(),
        "hunter2"
    );
    let (out, config) = put_camera(&d, "door", &json!({"password": "n3w"}), &env).unwrap();
    assert_eq!(
        config
            .camera("door")
            .unwrap()
            .password
            .as_ref()
            .unwrap()
            .expose(),
        "n3w"
    );
    assert!(holds_secret_text(&out.print(), "n3w"));
    // Choosing an environment variable removes the password from the file.
    let with_var = |name: &str| (name == "DOOR_PW").then(|| "from-env".to_string());
    let (out, config) =
        put_camera(&d, "door", &json!({"password_env": "DOOR_PW"}), &with_var).unwrap();
    assert!(!out.print().contains("hunter2"));
    assert_eq!(
        config
            .camera("door")
            .unwrap()
            .password
            .as_ref()
            .unwrap()
            .expose(),
        "from-env"
    );
}

fn holds_secret_text(text: &str, secret: &str) -> bool {
    text.contains(secret)
}

#[test]
fn every_problem_comes_back_with_its_path_and_no_secret() {
    let d = doc();
    let edit = json!({"main_url": "http://x/", "motion": {"threshold": 900}, "transport": "carrier pigeon", "password": "s3cret-typed"});
    let Err(EditError::Invalid(problems)) = put_camera(&d, "door", &edit, &env) else {
        panic!("accepted");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "cameras[0].main_url",
        "cameras[0].motion.threshold",
        "cameras[0].transport",
    ] {
        assert!(paths.contains(&want), "{paths:?}");
    }
    assert!(!format!("{problems:?}").contains("s3cret-typed"));
}

#[test]
fn add_writes_only_what_differs_from_the_defaults_and_delete_removes() {
    let d = doc();
    let edit = json!({
        "id": "yard", "name": "yard", "enabled": true, "main_url": "rtsp://10.0.0.3/s",
        "sub_url": null, "username": "admin", "password": "pw", "transport": "tcp",
        "motion": {"threshold": 25, "min_area": 0, "zones": [], "masks": []},
        "recording": {"mode": "continuous", "post_roll_s": 8}
    });
    let (out, config) = add_camera(&d, &edit, &env).unwrap();
    assert_eq!(config.cameras.len(), 2);
    let text = camera_text(&out, 1);
    assert_eq!(
        text,
        "{\n  \"id\": \"yard\",\n  \"main_url\": \"rtsp://10.0.0.3/s\",\n  \"username\": \"admin\",\n  \"password\": \"pw\",\n  \"recording\": { \"mode\": \"continuous\" }\n}\n"
    );
    assert!(matches!(
        add_camera(&out, &edit, &env),
        Err(EditError::Exists(_))
    ));
    let (back, config) = delete_camera(&out, "yard", &env).unwrap();
    assert_eq!(back.print(), FILE);
    assert_eq!(config.cameras.len(), 1);
    assert!(matches!(
        delete_camera(&d, "nope", &env),
        Err(EditError::NoCamera(_))
    ));
}

#[test]
fn zones_and_masks_are_replaced_and_cleared() {
    let d = doc();
    let edit = json!({"motion": {
        "zones": [{"name": "path", "points": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]}],
        "masks": [[[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]]
    }});
    let (out, config) = put_camera(&d, "door", &edit, &env).unwrap();
    let m = &config.camera("door").unwrap().motion;
    assert_eq!(m.zones[0].name, "path");
    assert_eq!(m.masks.len(), 1);
    let clear = json!({"motion": {"zones": [], "masks": []}});
    let (out, config) = put_camera(&out, "door", &clear, &env).unwrap();
    assert!(config.camera("door").unwrap().motion.zones.is_empty());
    assert!(!camera_text(&out, 0).contains("zones"));
}

#[test]
fn the_id_cannot_change_and_the_login_is_written_under_api() {
    let d = doc();
    assert!(matches!(
        put_camera(&d, "door", &json!({"id": "gate"}), &env),
        Err(EditError::BadRequest(_))
    ));
    let (out, config) = set_login(
        &d,
        "admin",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        &env,
    )
    .unwrap();
    assert_eq!(config.api.auth.unwrap().username, "admin");
    let masked = masked(&out.to_value());
    assert_eq!(masked["api"]["auth"]["password_hash"], "***");
    assert_eq!(masked["cameras"][0]["password"], "***");
    assert!(!masked.to_string().contains("hunter2"));
}

#[test]
fn secret_keys_are_recognised_by_name() {
    for k in [
        "password",
        "password_hash",
        "token",
        "mqtt_password",
        "api_token",
        "client_secret",
        "Password",
    ] {
        assert!(is_secret_key(k), "{k}");
    }
    for k in ["password_env", "username", "main_url", "token_env", "name"] {
        assert!(!is_secret_key(k), "{k}");
    }
}

#[test]
fn the_onvif_password_is_masked_and_kept_when_sent_back_masked() {
    let file = FILE.replace(
        r#""password": "hunter2","#,
        r#""password": "hunter2",
      "onvif": { "port": 2020, "password": "ptz-secret" },"#,
    );
    let d = Doc::parse(&file).unwrap();
    let config = validate(&d, &env).unwrap();
    let shown = effective_camera(config.camera("door").unwrap());
    assert_eq!(shown["onvif"]["password"], "***");
    assert!(!shown.to_string().contains("ptz-secret"));
    let (out, _) = put_camera(&d, "door", &shown, &env).unwrap();
    assert_eq!(out.print(), file, "a no-op edit gives the same bytes");
    let edit = json!({"onvif": {"port": 8000, "password": "***", "move_timeout_s": 1}});
    let (out, config) = put_camera(&d, "door", &edit, &env).unwrap();
    let onvif = config.camera("door").unwrap().onvif.clone().unwrap();
    assert_eq!((onvif.port, onvif.move_timeout_s), (8000, 1.0));
    assert_eq!(
        onvif.password.as_ref().map(|p| p.expose()),
        Some("ptz-secret")
    );
    assert!(out.print().contains("\"ptz-secret\""));
}
