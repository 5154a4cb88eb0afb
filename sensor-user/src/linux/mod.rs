//! The Linux event source: eBPF loader, ring-buffer reader, record decoding.
pub mod btf;
pub mod decode;
pub mod doctor;
pub mod loader;
pub mod privs;
pub mod replay;
pub mod sensor;
