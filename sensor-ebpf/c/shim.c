/* CO-RE accessors for the Rust eBPF programs.
 *
 * rustc emits no CO-RE relocations, so every read of a kernel structure goes
 * through one of these functions. clang compiles this file to LLVM bitcode and
 * bpf-linker links it into the Rust object, where LTO inlines the accessors.
 * Each accessor returns 0 (or a NULL pointer) when the read fails. */
#include "vigil_core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* Global (not static) so the Rust side can link them; LTO in bpf-linker inlines them. */
#define SHIM

/* --- task ------------------------------------------------------------------ */

/* Set by the loader where bpf_get_current_task_btf() exists (5.11 on); defined
 * in main.rs. Task pointers are then BTF-typed, and the accessors below read
 * task fields with plain loads: the verifier turns them into fault-safe loads
 * the JIT emits inline, where a bpf_probe_read_kernel call costs a helper call
 * per field. Only scalars come out of those loads, never a pointer: a BTF-typed
 * pointer could not be passed on to the global functions (scalar arguments),
 * so the pointers returned here are still read with the helper. Read-only
 * data, so the verifier sees a constant and checks one branch per kernel. */
extern const volatile u8 TASK_BTF;

/* Field `f` of `p`, the task or a struct reached from it: a plain load with
 * TASK_BTF, else a helper read. (Not nestable: clang refuses nested CO-RE
 * reads, so chains go through locals.) */
#define TASK_READ(p, f) (TASK_BTF ? (p)->f : BPF_CORE_READ(p, f))

SHIM u32 shim_task_tgid(struct task_struct *t) { return TASK_READ(t, tgid); }
SHIM u32 shim_task_pid(struct task_struct *t) { return TASK_READ(t, pid); }
SHIM s32 shim_task_exit_code(struct task_struct *t) { return TASK_READ(t, exit_code); }
SHIM u32 shim_task_flags(struct task_struct *t) { return TASK_READ(t, flags); }

SHIM u32 shim_task_ppid(struct task_struct *t)
{
	struct task_struct *parent = TASK_READ(t, real_parent);
	return TASK_READ(parent, tgid);
}

SHIM u32 shim_task_mntns(struct task_struct *t)
{
	struct nsproxy *ns = TASK_READ(t, nsproxy);
	struct mnt_namespace *mnt = TASK_READ(ns, mnt_ns);
	return TASK_READ(mnt, ns.inum);
}

/* loginuid and sessionid exist only with CONFIG_AUDIT (CONFIG_AUDITSYSCALL before 5.x). */
SHIM u32 shim_task_loginuid(struct task_struct *t)
{
	if (!bpf_core_field_exists(t->loginuid))
		return (u32)-1;
	return TASK_READ(t, loginuid.val);
}

SHIM u32 shim_task_sessionid(struct task_struct *t)
{
	if (!bpf_core_field_exists(t->sessionid))
		return (u32)-1;
	return TASK_READ(t, sessionid);
}

/* Without TASK_BTF, fewer helper reads for the process block of every record:
 * where the relocated offsets show neighbouring fields (as on every kernel so
 * far), one read fetches them all; else one read per field, as above. (With
 * TASK_BTF each field is its own load: the verifier refuses a load that spans
 * two fields.) */

/* The two u32 at `off` in `base`, the second in the high half. */
static inline u64 read_u32_pair(const void *base, u32 off)
{
	u32 ids[2]; /* no zeroing (a byte loop here): the helper writes all of it */
	bpf_probe_read_kernel(ids, sizeof(ids), (const char *)base + off);
	return (u64)ids[1] << 32 | ids[0];
}

/* tgid << 32 | pid. */
SHIM u64 shim_task_pid_tgid(struct task_struct *t)
{
	u32 pid = bpf_core_field_offset(struct task_struct, pid);
	if (!TASK_BTF && bpf_core_field_offset(struct task_struct, tgid) == pid + 4)
		return read_u32_pair(t, pid);
	return (u64)shim_task_tgid(t) << 32 | shim_task_pid(t);
}

/* uid, gid, euid, egid into out[0..4]; struct cred holds uid gid suid sgid
 * euid egid in a row. */
SHIM void shim_task_creds(struct task_struct *t, u32 *out)
{
	if (TASK_BTF) {
		const struct cred *c = t->cred;
		out[0] = c->uid.val;
		out[1] = c->gid.val;
		out[2] = c->euid.val;
		out[3] = c->egid.val;
		return;
	}
	const struct cred *c = BPF_CORE_READ(t, cred);
	u32 uid = bpf_core_field_offset(struct cred, uid);
	if (bpf_core_field_offset(struct cred, gid) == uid + 4 &&
	    bpf_core_field_offset(struct cred, euid) == uid + 16 &&
	    bpf_core_field_offset(struct cred, egid) == uid + 20) {
		u32 ids[6]; /* no zeroing, as above */
		bpf_probe_read_kernel(ids, sizeof(ids), (const char *)c + uid);
		out[0] = ids[0];
		out[1] = ids[1];
		out[2] = ids[4];
		out[3] = ids[5];
		return;
	}
	out[0] = BPF_CORE_READ(c, uid.val);
	out[1] = BPF_CORE_READ(c, gid.val);
	out[2] = BPF_CORE_READ(c, euid.val);
	out[3] = BPF_CORE_READ(c, egid.val);
}

/* sessionid << 32 | loginuid. */
SHIM u64 shim_task_audit_ids(struct task_struct *t)
{
	if (!TASK_BTF && bpf_core_field_exists(t->loginuid) && bpf_core_field_exists(t->sessionid)) {
		u32 login = bpf_core_field_offset(struct task_struct, loginuid);
		if (bpf_core_field_offset(struct task_struct, sessionid) == login + 4)
			return read_u32_pair(t, login);
	}
	return (u64)shim_task_sessionid(t) << 32 | shim_task_loginuid(t);
}

/* The process start time: the thread-group leader's, since boot. */
SHIM u64 shim_task_start_boottime(struct task_struct *t)
{
	struct task_struct *leader = TASK_READ(t, group_leader);
	return TASK_READ(leader, start_boottime);
}

SHIM u64 shim_task_arg_start(struct task_struct *t) { return BPF_CORE_READ(t, mm, arg_start); }
SHIM u64 shim_task_arg_end(struct task_struct *t) { return BPF_CORE_READ(t, mm, arg_end); }
SHIM struct file *shim_task_exe_file(struct task_struct *t) { return BPF_CORE_READ(t, mm, exe_file); }

SHIM struct vfsmount *shim_task_pwd_mnt(struct task_struct *t) { return BPF_CORE_READ(t, fs, pwd.mnt); }
SHIM struct vfsmount *shim_task_root_mnt(struct task_struct *t) { return BPF_CORE_READ(t, fs, root.mnt); }

/* The task's root or working directory ({mnt, dentry}) in one read. */
static inline struct dentry *path_of(const struct path *src, struct vfsmount **mnt)
{
	struct path p; /* no zeroing, as above */
	bpf_core_read(&p, sizeof(p), src);
	*mnt = p.mnt;
	return p.dentry;
}

SHIM struct dentry *shim_task_root(struct task_struct *t, struct vfsmount **mnt)
{
	return path_of(&TASK_READ(t, fs)->root, mnt);
}

SHIM struct dentry *shim_task_pwd(struct task_struct *t, struct vfsmount **mnt)
{
	return path_of(&TASK_READ(t, fs)->pwd, mnt);
}

/* The task's fd array (a plain address either way: the verifier types no
 * pointer to pointer) and its size in *max; 0 for none. */
static inline struct file **task_fds(struct task_struct *t, u32 *max)
{
	struct files_struct *files = TASK_READ(t, files);
	struct fdtable *fdt = TASK_READ(files, fdt);
	if (!fdt) {
		*max = 0;
		return 0;
	}
	*max = TASK_READ(fdt, max_fds);
	return TASK_READ(fdt, fd);
}

/* fd -> struct file, through the task's fd table (bounds-checked). */
SHIM struct file *shim_task_fd_file(struct task_struct *t, u32 fd)
{
	u32 max;
	struct file **fds = task_fds(t, &max);
	if (fd >= max)
		return 0;
	struct file *f = 0;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	return f;
}

/* Whether an fd of the task other than `fd` refers to `f`. Only the first
 * FD_SCAN fds are looked at: a dup beyond them reads as "not held here", which
 * ends the session early (the next write opens another, so nothing is lost). */
#define FD_SCAN 64
SHIM u32 shim_task_other_fd_holds(struct task_struct *t, u32 fd, struct file *f)
{
	u32 max;
	struct file **fds = task_fds(t, &max);
	for (u32 i = 0; i < FD_SCAN && i < max; i++) {
		struct file *g = 0;
		if (i == fd)
			continue;
		bpf_core_read(&g, sizeof(g), &fds[i]);
		if (g == f)
			return 1;
	}
	return 0;
}

/* --- file, dentry, inode, mount ---------------------------------------------- */

/* The file's dentry, its mount in *mnt: one read. */
SHIM struct dentry *shim_file_path(struct file *f, struct vfsmount **mnt)
{
	return path_of(&f->f_path, mnt);
}
SHIM struct inode *shim_file_inode(struct file *f) { return BPF_CORE_READ(f, f_inode); }
SHIM u32 shim_file_mode(struct file *f) { return BPF_CORE_READ(f, f_mode); }
SHIM u32 shim_file_flags(struct file *f) { return BPF_CORE_READ(f, f_flags); }
SHIM struct dentry *shim_path_dentry(const struct path *p) { return BPF_CORE_READ(p, dentry); }
SHIM struct vfsmount *shim_path_mnt(const struct path *p) { return BPF_CORE_READ(p, mnt); }

/* How many references the open file has (fds in any process, in-flight calls). */
SHIM s64 shim_file_refs(struct file *f)
{
	struct file___fref *v2 = (void *)f;
	struct file___fcount *v1 = (void *)f;
	if (bpf_core_field_exists(v2->f_ref))
		return BPF_CORE_READ(v2, f_ref.refcnt.counter) + 1;
	if (bpf_core_field_exists(v1->f_count))
		return BPF_CORE_READ(v1, f_count.counter);
	return 1;
}

SHIM struct dentry *shim_dentry_parent(struct dentry *d) { return BPF_CORE_READ(d, d_parent); }
/* The parent of d, with the pointer to d's name in *name: one read where
 * d_name follows d_parent (as on every kernel so far). */
SHIM struct dentry *shim_dentry_parent_name(struct dentry *d, const unsigned char **name)
{
	u32 parent = bpf_core_field_offset(struct dentry, d_parent);
	if (bpf_core_field_offset(struct dentry, d_name.name) == parent + 16) {
		u64 v[3]; /* no zeroing, as above */
		bpf_probe_read_kernel(v, sizeof(v), (const char *)d + parent);
		*name = (const unsigned char *)v[2];
		return (struct dentry *)v[0];
	}
	*name = BPF_CORE_READ(d, d_name.name);
	return BPF_CORE_READ(d, d_parent);
}
SHIM struct inode *shim_dentry_inode(struct dentry *d) { return BPF_CORE_READ(d, d_inode); }

/* What identifies an inode, and its type: mirrors InodeId in shim.rs. */
struct inode_id {
	u64 ino;
	u32 dev;
	u32 generation;
	u32 mode;
	u32 pad;
};

/* i_mode, i_sb and i_ino lie in the first INODE_HEAD bytes of struct inode on
 * every kernel so far, and i_generation too on recent ones (0, 40, 64, 124 on
 * 6.18; 5.10 has it past 500): one read of that block, one of the superblock's
 * s_dev and, where i_generation is further on, one more, where per-field
 * reads take five. */
#define INODE_HEAD 128

SHIM void shim_inode_id(struct inode *i, struct inode_id *out)
{
	u32 mode = bpf_core_field_offset(struct inode, i_mode);
	u32 sb = bpf_core_field_offset(struct inode, i_sb);
	u32 ino = bpf_core_field_offset(struct inode, i_ino);
	u32 gen = bpf_core_field_offset(struct inode, i_generation);
	if (mode + 2 <= INODE_HEAD && sb + 8 <= INODE_HEAD && ino + 8 <= INODE_HEAD) {
		u64 head[INODE_HEAD / 8]; /* no zeroing, as above */
		bpf_probe_read_kernel(head, sizeof(head), i);
		const char *h = (const char *)head;
		out->mode = *(const u16 *)(h + mode);
		out->ino = *(const u64 *)(h + ino);
		if (gen + 4 <= INODE_HEAD)
			out->generation = *(const u32 *)(h + gen);
		else
			out->generation = BPF_CORE_READ(i, i_generation);
		out->dev = BPF_CORE_READ(*(struct super_block *const *)(h + sb), s_dev);
		return;
	}
	out->mode = BPF_CORE_READ(i, i_mode);
	out->ino = BPF_CORE_READ(i, i_ino);
	out->generation = BPF_CORE_READ(i, i_generation);
	out->dev = BPF_CORE_READ(i, i_sb, s_dev);
}

SHIM u32 shim_inode_mode(struct inode *i) { return BPF_CORE_READ(i, i_mode); }

SHIM struct dentry *shim_mnt_root(struct vfsmount *m) { return BPF_CORE_READ(m, mnt_root); }
SHIM struct super_block *shim_mnt_sb(struct vfsmount *m) { return BPF_CORE_READ(m, mnt_sb); }
SHIM struct super_block *shim_dentry_sb(struct dentry *d) { return BPF_CORE_READ(d, d_sb); }

/* --- VFS-tier arguments ------------------------------------------------------ */

SHIM struct dentry *shim_rd_old_dentry(struct renamedata *rd) { return BPF_CORE_READ(rd, old_dentry); }
SHIM struct dentry *shim_rd_new_dentry(struct renamedata *rd) { return BPF_CORE_READ(rd, new_dentry); }
SHIM u32 shim_rd_flags(struct renamedata *rd) { return BPF_CORE_READ(rd, flags); }
SHIM u32 shim_iattr_valid(struct iattr *a) { return BPF_CORE_READ(a, ia_valid); }
SHIM u32 shim_iattr_mode(struct iattr *a) { return BPF_CORE_READ(a, ia_mode); }
SHIM u32 shim_iattr_uid(struct iattr *a) { return BPF_CORE_READ(a, ia_uid.val); }
SHIM u32 shim_iattr_gid(struct iattr *a) { return BPF_CORE_READ(a, ia_gid.val); }
SHIM s64 shim_iattr_size(struct iattr *a) { return BPF_CORE_READ(a, ia_size); }
SHIM u64 shim_vma_flags(struct vm_area_struct *v) { return BPF_CORE_READ(v, vm_flags); }
SHIM struct file *shim_vma_file(struct vm_area_struct *v) { return BPF_CORE_READ(v, vm_file); }

/* struct mount embeds struct vfsmount; container_of with a relocated offset. */
static inline struct mount *real_mount(struct vfsmount *m)
{
	return (struct mount *)((char *)m - bpf_core_field_offset(struct mount, mnt));
}

/* The mount this one is attached to (itself at the namespace root). */
SHIM struct vfsmount *shim_mnt_parent(struct vfsmount *m)
{
	struct mount *parent = BPF_CORE_READ(real_mount(m), mnt_parent);
	return (struct vfsmount *)((char *)parent + bpf_core_field_offset(struct mount, mnt));
}

/* The dentry this mount is mounted on, in the parent mount. */
SHIM struct dentry *shim_mnt_mountpoint(struct vfsmount *m)
{
	return BPF_CORE_READ(real_mount(m), mnt_mountpoint);
}

/* openat2's struct open_how lives in user memory. */
SHIM u64 shim_open_how_flags(struct open_how *how)
{
	u64 flags = 0;
	bpf_probe_read_user(&flags, sizeof(flags), &how->flags);
	return flags;
}

/* Rust's core has no atomic read-modify-write for the BPF target; clang emits
 * BPF_ATOMIC add for this. */
SHIM void shim_atomic_add(u64 *p, u64 v) { __sync_fetch_and_add(p, v); }
