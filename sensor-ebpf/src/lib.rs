//! Host-side stub: lets sensor-user name this crate as a build-dependency so cargo
//! rebuilds the embedded eBPF object when it changes. The programs are in main.rs.
#![no_std]
