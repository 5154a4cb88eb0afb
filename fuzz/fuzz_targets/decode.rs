//! The ring-buffer record decoder: any bytes, as a corrupt or truncated
//! record would arrive; an error is fine, a panic is a finding.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Ring-buffer records are 8-aligned; the decoder must not rely on it.
    let _ = vigil::linux::decode::decode(data);
    let mut aligned = vec![0u64; data.len().div_ceil(8)];
    // SAFETY: the u64 buffer holds at least data.len() bytes.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(aligned.as_mut_ptr() as *mut u8, data.len()) };
    bytes.copy_from_slice(data);
    let _ = vigil::linux::decode::decode(bytes);
});
