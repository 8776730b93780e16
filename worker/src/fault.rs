//! Test-only fault switches, so integration tests can make a real worker crash, hang or leak.
//!
//! Set `NVR_TEST_FAULT="<camera_id>:<fault>[,<camera_id>:<fault>...]"` in the supervisor's environment;
//! each worker acts only on its own camera's entries. Faults: `crash` (panic after `Configure`), `hang`
//! (stop sending heartbeats while staying alive), `alloc=<MB>` (grow resident memory to MB), `spin`
//! (burn one core). Nothing reads this variable in normal operation.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Crash,
    Hang,
    Alloc { mb: usize },
    Spin,
}

/// The faults configured for `camera_id` in `spec` (the value of `NVR_TEST_FAULT`).
pub fn parse(spec: &str, camera_id: &str) -> Vec<Fault> {
    spec.split(',')
        .filter_map(|item| item.trim().split_once(':'))
        .filter(|(cam, _)| *cam == camera_id)
        .filter_map(|(_, fault)| match fault.split_once('=') {
            Some(("alloc", mb)) => mb.parse().ok().map(|mb| Fault::Alloc { mb }),
            None if fault == "crash" => Some(Fault::Crash),
            None if fault == "hang" => Some(Fault::Hang),
            None if fault == "spin" => Some(Fault::Spin),
            _ => None,
        })
        .collect()
}

pub fn from_env(camera_id: &str) -> Vec<Fault> {
    std::env::var("NVR_TEST_FAULT")
        .map(|spec| parse(&spec, camera_id))
        .unwrap_or_default()
}

/// Starts the faults that run on their own (`crash` panics right here).
pub fn start(faults: &[Fault]) {
    for fault in faults {
        match *fault {
            Fault::Crash => panic!("test fault: crash"),
            Fault::Alloc { mb } => {
                std::thread::spawn(move || {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    for _ in 0..mb {
                        hoard.push(vec![1u8; 1 << 20]); // touched, so it is resident
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    loop {
                        std::thread::sleep(Duration::from_secs(3600));
                        std::hint::black_box(&hoard);
                    }
                });
            }
            Fault::Spin => {
                std::thread::spawn(|| loop {
                    std::hint::black_box(0u64.wrapping_add(1));
                });
            }
            Fault::Hang => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_this_cameras_faults() {
        let spec = "a:crash, b:hang,a:alloc=300,b:spin,a:bogus,c";
        assert_eq!(
            parse(spec, "a"),
            vec![Fault::Crash, Fault::Alloc { mb: 300 }]
        );
        assert_eq!(parse(spec, "b"), vec![Fault::Hang, Fault::Spin]);
        assert!(parse(spec, "c").is_empty());
    }
}
