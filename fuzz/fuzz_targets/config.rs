//! The policy parser and compiler (`policy.toml`): any text gives a policy
//! or an error naming a line and column, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = vigil::config::Config::parse(text, "fuzz.toml") {
        let _ = vigil::policy::Policy::new(cfg);
    }
    let _ = sensor_windows::Policy::parse(text, "fuzz.toml");
});
