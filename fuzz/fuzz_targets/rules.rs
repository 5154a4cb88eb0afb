//! The rule-file parser and compiler: any text gives rules or an error
//! naming a line and column, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vigil::rules::RuleSet::parse(text, "fuzz.rules.toml");
    }
});
