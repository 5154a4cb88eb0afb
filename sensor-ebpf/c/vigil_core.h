/* Minimal kernel type declarations for CO-RE.
 *
 * Only the fields Vigil reads are declared, and only their names matter: every
 * access is compiled with preserve_access_index, so libbpf-style relocations let
 * the loader (aya) rewrite offsets for the running kernel's BTF. The layouts below
 * are NOT any kernel's real layout. */
#ifndef VIGIL_CORE_H
#define VIGIL_CORE_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int s32;
typedef long long s64;
typedef u32 dev_t;
typedef u16 umode_t;
typedef u32 fmode_t;

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct { u32 val; } kuid_t;
typedef struct { u32 val; } kgid_t;

struct qstr { const unsigned char *name; };
struct super_block { dev_t s_dev; };
struct inode {
	umode_t i_mode;
	unsigned long i_ino;
	struct super_block *i_sb;
	u32 i_generation;
};
struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
	struct super_block *d_sb;
};
struct vfsmount { struct dentry *mnt_root; struct super_block *mnt_sb; };
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};
struct path { struct vfsmount *mnt; struct dentry *dentry; };
struct file {
	struct path f_path;
	struct inode *f_inode;
	fmode_t f_mode;
	unsigned int f_flags;
};
struct fdtable { unsigned int max_fds; struct file **fd; };
struct files_struct { struct fdtable *fdt; };
struct fs_struct { struct path root; struct path pwd; };
struct ns_common { unsigned int inum; };
struct mnt_namespace { struct ns_common ns; };
struct nsproxy { struct mnt_namespace *mnt_ns; };
struct cred { kuid_t uid; kgid_t gid; kuid_t euid; kgid_t egid; };
struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
	struct file *exe_file;
};
struct task_struct {
	s32 pid;
	s32 tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	u64 start_boottime;
	const struct cred *cred;
	struct fs_struct *fs;
	struct files_struct *files;
	struct nsproxy *nsproxy;
	struct mm_struct *mm;
	kuid_t loginuid;
	unsigned int sessionid;
	int exit_code;
	unsigned int flags;
};
typedef struct { s64 counter; } atomic64_t;
/* struct file's reference count: f_count before 6.13, f_ref (file_ref_t, where 0
 * means one reference) since. The ___ suffixes are CO-RE flavors. */
typedef struct { atomic64_t refcnt; } file_ref_t;
struct file___fcount { atomic64_t f_count; };
struct file___fref { file_ref_t f_ref; };
struct open_how { u64 flags; u64 mode; u64 resolve; };
/* vfs_rename's argument since 5.12 (six scalar arguments before). */
struct renamedata {
	struct dentry *old_dentry;
	struct dentry *new_dentry;
	unsigned int flags;
};
/* notify_change's request. Since 6.2 ia_uid/ia_gid share an anonymous union
 * with ia_vfsuid/ia_vfsgid; both have `val` first. */
struct iattr {
	unsigned int ia_valid;
	umode_t ia_mode;
	kuid_t ia_uid;
	kgid_t ia_gid;
	s64 ia_size;
};

/* A mapping. Since 6.3 vm_flags is a const member of an anonymous union (with
 * __vm_flags): CO-RE matches it by name. */
struct vm_area_struct {
	unsigned long vm_flags;
	struct file *vm_file;
};

#pragma clang attribute pop

#endif
