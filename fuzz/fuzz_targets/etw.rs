//! The ETW record interpreter: a recording (NDJSON, as `replay` reads it) of
//! any records in any order, fed to the state machine with the PCI policy.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sensor_windows::baseline::MapReader;
use sensor_windows::{Interpreter, Policy, RegistryBaseline};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rec) = sensor_windows::replay::parse(text, "fuzz.ndjson") else {
        return;
    };
    let mut i = Interpreter::new(
        Policy::pci_windows(),
        rec.volumes,
        Box::new(MapReader::default()),
        RegistryBaseline::new(),
    );
    for (h, r) in rec.events {
        let _ = i.push(&h, r);
    }
});
