//! Declarations of the CO-RE accessors in `c/shim.c`.
//!
//! Kernel pointers are opaque here: Rust never dereferences them, it only passes
//! them back to the shim, whose reads carry CO-RE relocations.
use core::ffi::c_void;

pub type Ptr = *const c_void;

/// What identifies an inode, and its type (`struct inode_id` in the shim).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct InodeId {
    pub ino: u64,
    pub dev: u32,
    pub generation: u32,
    pub mode: u32,
    pub _pad: u32,
}

unsafe extern "C" {
    pub fn shim_task_tgid(task: Ptr) -> u32;
    pub fn shim_task_pid(task: Ptr) -> u32;
    pub fn shim_task_pid_tgid(task: Ptr) -> u64;
    pub fn shim_task_ppid(task: Ptr) -> u32;
    /// uid, gid, euid, egid into `out[0..4]`.
    pub fn shim_task_creds(task: Ptr, out: *mut u32);
    pub fn shim_task_audit_ids(task: Ptr) -> u64;
    pub fn shim_task_mntns(task: Ptr) -> u32;
    pub fn shim_task_exit_code(task: Ptr) -> i32;
    pub fn shim_task_flags(task: Ptr) -> u32;
    pub fn shim_task_start_boottime(task: Ptr) -> u64;
    pub fn shim_task_arg_start(task: Ptr) -> u64;
    pub fn shim_task_arg_end(task: Ptr) -> u64;
    pub fn shim_task_exe_file(task: Ptr) -> Ptr;
    pub fn shim_task_pwd_mnt(task: Ptr) -> Ptr;
    pub fn shim_task_root_mnt(task: Ptr) -> Ptr;
    /// The root directory's dentry, its mount in `*mnt`.
    pub fn shim_task_root(task: Ptr, mnt: *mut Ptr) -> Ptr;
    /// The working directory's dentry, its mount in `*mnt`.
    pub fn shim_task_pwd(task: Ptr, mnt: *mut Ptr) -> Ptr;
    pub fn shim_task_fd_file(task: Ptr, fd: u32) -> Ptr;
    pub fn shim_task_other_fd_holds(task: Ptr, fd: u32, file: Ptr) -> u32;

    /// The file's dentry, its mount in `*mnt`.
    pub fn shim_file_path(file: Ptr, mnt: *mut Ptr) -> Ptr;
    pub fn shim_file_inode(file: Ptr) -> Ptr;
    pub fn shim_file_mode(file: Ptr) -> u32;
    pub fn shim_file_flags(file: Ptr) -> u32;
    pub fn shim_path_dentry(path: Ptr) -> Ptr;
    pub fn shim_path_mnt(path: Ptr) -> Ptr;
    pub fn shim_file_refs(file: Ptr) -> i64;

    pub fn shim_dentry_parent(dentry: Ptr) -> Ptr;
    pub fn shim_dentry_parent_name(dentry: Ptr, name: *mut Ptr) -> Ptr;
    pub fn shim_dentry_inode(dentry: Ptr) -> Ptr;

    pub fn shim_inode_id(inode: Ptr, out: *mut InodeId);
    pub fn shim_inode_mode(inode: Ptr) -> u32;

    pub fn shim_mnt_root(mnt: Ptr) -> Ptr;
    pub fn shim_mnt_parent(mnt: Ptr) -> Ptr;
    pub fn shim_mnt_mountpoint(mnt: Ptr) -> Ptr;

    pub fn shim_mnt_sb(mnt: Ptr) -> Ptr;
    pub fn shim_dentry_sb(dentry: Ptr) -> Ptr;

    pub fn shim_rd_old_dentry(rd: Ptr) -> Ptr;
    pub fn shim_rd_new_dentry(rd: Ptr) -> Ptr;
    pub fn shim_rd_flags(rd: Ptr) -> u32;
    pub fn shim_iattr_valid(attr: Ptr) -> u32;
    pub fn shim_iattr_mode(attr: Ptr) -> u32;
    pub fn shim_iattr_uid(attr: Ptr) -> u32;
    pub fn shim_iattr_gid(attr: Ptr) -> u32;
    pub fn shim_iattr_size(attr: Ptr) -> i64;
    pub fn shim_vma_flags(vma: Ptr) -> u64;
    pub fn shim_vma_file(vma: Ptr) -> Ptr;

    pub fn shim_open_how_flags(how: Ptr) -> u64;
    pub fn shim_atomic_add(p: *mut u64, v: u64);
}
