/* SPDX-License-Identifier: MIT */
/*
 * The heap profiler's cached stack walk (amd64; stackwalk.h).
 *
 * What a frame needs to find its caller, from the DWARF call frame information in
 * .eh_frame (the DWARF 4 standard, section 6.4; the amd64 psABI, section 3.7): at the
 * return address pc of a frame whose stack pointer is rsp and frame pointer rbp,
 *   CFA  = rsp + off, or rbp + off (a function that keeps a frame pointer, or alloca)
 *   the caller's return address at CFA + ra_off (the psABI's -8)
 *   the caller's rbp at CFA + rbp_off where the function saved it, else rbp itself
 *   the caller's rsp = CFA.
 * That rule is the row of the function's CFI table at pc - 1 (a call's return address
 * may be the first byte of the next function: libgcc looks up pc - 1 too).  It is a
 * function of pc alone, so it is computed once: _Unwind_Find_FDE finds the FDE (lock
 * free through glibc's _dl_find_object), the CIE's initial instructions and the FDE's
 * instructions run up to pc - 1, and the row is packed into one word and kept in an
 * open-addressed table keyed by pc.  A rule this walk cannot follow (an 'S' signal
 * frame, a DWARF expression for the CFA, rbp or the return address, the CFA through
 * another register, more remembered states than it keeps) is kept as "libgcc": the
 * whole walk is done again by _Unwind_Backtrace.  An address without an FDE ends the
 * stack, as libgcc ends it, unless the code there is the kernel's signal return, which
 * libgcc recognises by its bytes: then libgcc again.
 *
 * The table is shared by all threads without a lock: a slot's key (pc, and the low bits
 * of the loader's unload count) is claimed by compare-and-swap, its rule stored after;
 * a reader takes the rule only when the key reads the same before and after it (a rule
 * is a function of its key, so whatever it read then is right).  When the loader's
 * unload count moves (dlclose), every key learnt before stops matching and the table
 * is cleared: a new object at an old address gets its own rules.
 */
#include "internal.h"

#include "stackwalk.h"

#if MLC_STACKWALK_CACHED

#include "os.h"

#include <link.h>
#include <stddef.h>
#include <string.h>

/* libgcc's own lookup (unwind-dw2-fde.h, not installed): the FDE that covers pc, and the
   start of its function in bases->func. */
struct mlc_eh_bases {
  void *tbase, *dbase, *func;
};
extern const void *mlc_find_fde(void *pc, struct mlc_eh_bases *bases) __asm__("_Unwind_Find_FDE");

#define MLC_UW_SLOTS 16384 /* power of two: 256 KiB */
#define MLC_UW_PROBES 16
/* A frame larger than this ends the walk (a corrupt frame pointer, not a frame). */
#define MLC_UW_MAX_FRAME ((uintptr_t)1 << 28)
#define MLC_UW_STATES 8

/* DWARF register numbers on amd64. */
enum { MLC_DW_RBP = 6, MLC_DW_RSP = 7, MLC_DW_RA = 16 };

/* A packed rule: cfa_off in bits 0-31, rbp_off 32-47, ra_off 48-55, flags 56-63. */
enum {
  MLC_UW_OK = 1,     /* kind: follow the rule */
  MLC_UW_END = 2,    /* kind: the outermost frame (no return address) */
  MLC_UW_LIBGCC = 3, /* kind: libgcc's unwinder must walk this stack */
  MLC_UW_KIND = 3,
  MLC_UW_CFA_RBP = 4,   /* CFA = rbp + off, else rsp + off */
  MLC_UW_RBP_SAVED = 8, /* the caller's rbp is at CFA + rbp_off */
  MLC_UW_RBP_LOST = 16  /* the caller's rbp is unknown (DW_CFA_undefined) */
};

typedef struct {
  uint64_t key;  /* Atomic: pc + (generation << 56), 0 when free */
  uint64_t rule; /* Atomic: 0 until stored */
} mlc_uw_slot_t;

static mlc_uw_slot_t *mlc_uw_table; /* Constant after boot */
static uint64_t mlc_uw_gen;         /* Atomic: the loader's unload count seen last */

bool mlc_stackwalk_boot(void) {
  if (mlc_uw_table) return true;
  mlc_uw_table = mlc_os_map(MLC_UW_SLOTS * sizeof(mlc_uw_slot_t), MLC_PAGE);
  return mlc_uw_table != NULL;
}

/* ---- Reading .eh_frame ---- */

typedef struct {
  const uint8_t *p, *end;
  bool bad;
} mlc_uw_rd_t;

static uint64_t mlc_uw_uleb(mlc_uw_rd_t *r) {
  uint64_t v = 0;
  unsigned shift = 0;
  for (;;) {
    if (r->p >= r->end || shift > 63) {
      r->bad = true;
      return 0;
    }
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
    if (!(b & 0x80)) return v;
  }
}

static int64_t mlc_uw_sleb(mlc_uw_rd_t *r) {
  uint64_t v = 0;
  unsigned shift = 0;
  uint8_t b;
  do {
    if (r->p >= r->end || shift > 63) {
      r->bad = true;
      return 0;
    }
    b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
  } while (b & 0x80);
  if (shift < 64 && (b & 0x40)) v |= ~(uint64_t)0 << shift;
  return (int64_t)v;
}

static uint64_t mlc_uw_fixed(mlc_uw_rd_t *r, unsigned n) {
  if ((size_t)(r->end - r->p) < n) {
    r->bad = true;
    return 0;
  }
  uint64_t v = 0;
  memcpy(&v, r->p, n); /* little-endian */
  r->p += n;
  return v;
}

/* Skips one encoded pointer's value (DW_EH_PE_*: its format, the low 4 bits). */
static void mlc_uw_skip_ptr(mlc_uw_rd_t *r, uint8_t enc) {
  if (enc == 0xff) return; /* omitted */
  if ((enc & 0x70) == 0x50) { /* aligned: not in .eh_frame */
    r->bad = true;
    return;
  }
  switch (enc & 0x0f) {
    case 0x00: mlc_uw_fixed(r, 8); break;           /* absptr */
    case 0x01: mlc_uw_uleb(r); break;               /* uleb128 */
    case 0x09: mlc_uw_sleb(r); break;               /* sleb128 */
    case 0x02: case 0x0a: mlc_uw_fixed(r, 2); break; /* udata2, sdata2 */
    case 0x03: case 0x0b: mlc_uw_fixed(r, 4); break; /* udata4, sdata4 */
    case 0x04: case 0x0c: mlc_uw_fixed(r, 8); break; /* udata8, sdata8 */
    default: r->bad = true;
  }
}

/* One row of the CFI table, for the registers the walk needs. */
enum { MLC_RULE_SAME, MLC_RULE_OFFSET, MLC_RULE_UNDEF, MLC_RULE_OTHER };
typedef struct {
  unsigned cfa_reg;
  int64_t cfa_off;
  bool cfa_other; /* an expression */
  uint8_t rbp_how, ra_how;
  int64_t rbp_off, ra_off;
} mlc_uw_row_t;

typedef struct {
  uint64_t code_align;
  int64_t data_align;
  uint64_t ra_reg;
  mlc_uw_row_t init; /* after the CIE's instructions, for DW_CFA_restore */
  mlc_uw_row_t stack[MLC_UW_STATES];
  unsigned depth;
} mlc_uw_cfi_t;

static void mlc_uw_set(mlc_uw_row_t *row, uint64_t reg, uint64_t ra_reg, uint8_t how, int64_t off) {
  if (reg == MLC_DW_RBP) {
    row->rbp_how = how;
    row->rbp_off = off;
  } else if (reg == ra_reg) {
    row->ra_how = how;
    row->ra_off = off;
  }
}

/* A register's rule back to the CIE's (DW_CFA_restore). */
static void mlc_uw_restore(const mlc_uw_cfi_t *c, mlc_uw_row_t *row, uint64_t reg) {
  if (reg == MLC_DW_RBP) {
    row->rbp_how = c->init.rbp_how;
    row->rbp_off = c->init.rbp_off;
  } else if (reg == c->ra_reg) {
    row->ra_how = c->init.ra_how;
    row->ra_off = c->init.ra_off;
  }
}

/* Runs CFI instructions [r->p, r->end) on row while the location (from loc) is at most
   target.  false where an instruction cannot be followed. */
static bool mlc_uw_run(mlc_uw_cfi_t *c, mlc_uw_row_t *row, mlc_uw_rd_t *r, uint64_t loc, uint64_t target) {
  while (r->p < r->end && loc <= target && !r->bad) {
    uint8_t op = *r->p++;
    uint8_t low = op & 0x3f;
    uint64_t reg, off;
    switch (op >> 6) {
      case 1: /* DW_CFA_advance_loc */
        loc += low * c->code_align;
        continue;
      case 2: /* DW_CFA_offset */
        off = mlc_uw_uleb(r);
        mlc_uw_set(row, low, c->ra_reg, MLC_RULE_OFFSET, (int64_t)off * c->data_align);
        continue;
      case 3: /* DW_CFA_restore */
        mlc_uw_restore(c, row, low);
        continue;
    }
    switch (op) {
      case 0x00: break;                                              /* nop */
      case 0x02: loc += mlc_uw_fixed(r, 1) * c->code_align; break;   /* advance_loc1 */
      case 0x03: loc += mlc_uw_fixed(r, 2) * c->code_align; break;   /* advance_loc2 */
      case 0x04: loc += mlc_uw_fixed(r, 4) * c->code_align; break;   /* advance_loc4 */
      case 0x05:                                                     /* offset_extended */
        reg = mlc_uw_uleb(r);
        off = mlc_uw_uleb(r);
        mlc_uw_set(row, reg, c->ra_reg, MLC_RULE_OFFSET, (int64_t)off * c->data_align);
        break;
      case 0x06: mlc_uw_restore(c, row, mlc_uw_uleb(r)); break; /* restore_extended */
      case 0x07: mlc_uw_set(row, mlc_uw_uleb(r), c->ra_reg, MLC_RULE_UNDEF, 0); break; /* undefined */
      case 0x08: mlc_uw_set(row, mlc_uw_uleb(r), c->ra_reg, MLC_RULE_SAME, 0); break;  /* same_value */
      case 0x09:                                                                        /* register */
        reg = mlc_uw_uleb(r);
        mlc_uw_uleb(r);
        mlc_uw_set(row, reg, c->ra_reg, MLC_RULE_OTHER, 0);
        break;
      case 0x0a: /* remember_state */
        if (c->depth == MLC_UW_STATES) return false;
        c->stack[c->depth++] = *row;
        break;
      case 0x0b: { /* restore_state: the CFA rule is restored with the registers (DWARF 4) */
        if (c->depth == 0) return false;
        *row = c->stack[--c->depth];
        break;
      }
      case 0x0c: /* def_cfa */
        row->cfa_reg = (unsigned)mlc_uw_uleb(r);
        row->cfa_off = (int64_t)mlc_uw_uleb(r);
        row->cfa_other = false;
        break;
      case 0x0d: /* def_cfa_register */
        row->cfa_reg = (unsigned)mlc_uw_uleb(r);
        row->cfa_other = false;
        break;
      case 0x0e: row->cfa_off = (int64_t)mlc_uw_uleb(r); break; /* def_cfa_offset */
      case 0x0f: /* def_cfa_expression */
        off = mlc_uw_uleb(r);
        if ((uint64_t)(r->end - r->p) < off) return false;
        r->p += off;
        row->cfa_other = true;
        break;
      case 0x10: /* expression */
      case 0x16: /* val_expression */
        reg = mlc_uw_uleb(r);
        off = mlc_uw_uleb(r);
        if ((uint64_t)(r->end - r->p) < off) return false;
        r->p += off;
        mlc_uw_set(row, reg, c->ra_reg, MLC_RULE_OTHER, 0);
        break;
      case 0x11: /* offset_extended_sf */
        reg = mlc_uw_uleb(r);
        mlc_uw_set(row, reg, c->ra_reg, MLC_RULE_OFFSET, mlc_uw_sleb(r) * c->data_align);
        break;
      case 0x12: /* def_cfa_sf */
        row->cfa_reg = (unsigned)mlc_uw_uleb(r);
        row->cfa_off = mlc_uw_sleb(r) * c->data_align;
        row->cfa_other = false;
        break;
      case 0x13: row->cfa_off = mlc_uw_sleb(r) * c->data_align; break; /* def_cfa_offset_sf */
      case 0x14: /* val_offset */
      case 0x15: /* val_offset_sf */
        reg = mlc_uw_uleb(r);
        if (op == 0x14) mlc_uw_uleb(r);
        else mlc_uw_sleb(r);
        mlc_uw_set(row, reg, c->ra_reg, MLC_RULE_OTHER, 0);
        break;
      case 0x2e: mlc_uw_uleb(r); break; /* GNU_args_size */
      case 0x2f:                        /* GNU_negative_offset_extended */
        reg = mlc_uw_uleb(r);
        off = mlc_uw_uleb(r);
        mlc_uw_set(row, reg, c->ra_reg, MLC_RULE_OFFSET, -(int64_t)off * c->data_align);
        break;
      default: return false; /* set_loc, a vendor's operation */
    }
  }
  return !r->bad;
}

/* The kernel's signal return code (mov $15, %rax; syscall), which libgcc walks through
   without an FDE: glibc's __restore_rt. */
static bool mlc_uw_is_sigreturn(uintptr_t pc) {
  static const uint8_t code[9] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
  return memcmp((const void *)pc, code, sizeof(code)) == 0;
}

/* The packed rule at return address pc, from .eh_frame. */
static uint64_t mlc_uw_compute(uintptr_t pc) {
  const uint64_t libgcc = (uint64_t)MLC_UW_LIBGCC << 56;
  struct mlc_eh_bases bases = {0, 0, 0};
  const uint8_t *fde = mlc_find_fde((void *)(pc - 1), &bases);
  if (!fde) return mlc_uw_is_sigreturn(pc) ? libgcc : (uint64_t)MLC_UW_END << 56;
  uint32_t fde_len, cie_delta, cie_len;
  memcpy(&fde_len, fde, 4);
  memcpy(&cie_delta, fde + 4, 4);
  if (fde_len == 0xffffffffu || fde_len < 8) return libgcc;
  const uint8_t *cie = fde + 4 - cie_delta;
  memcpy(&cie_len, cie, 4);
  if (cie_len == 0xffffffffu || cie_len < 8) return libgcc;

  /* The CIE: id, version, augmentation, alignments, return address column. */
  mlc_uw_cfi_t c;
  memset(&c, 0, sizeof(c));
  mlc_uw_rd_t r = {cie + 8, cie + 4 + cie_len, false};
  uint8_t version = (uint8_t)mlc_uw_fixed(&r, 1);
  const char *aug = (const char *)r.p;
  size_t auglen = strnlen(aug, (size_t)(r.end - r.p));
  if (r.bad || auglen == (size_t)(r.end - r.p) || (version != 1 && version != 3)) return libgcc;
  r.p += auglen + 1;
  c.code_align = mlc_uw_uleb(&r);
  c.data_align = mlc_uw_sleb(&r);
  c.ra_reg = version == 1 ? mlc_uw_fixed(&r, 1) : mlc_uw_uleb(&r);
  uint8_t fde_enc = 0; /* absptr */
  bool has_z = aug[0] == 'z';
  if (auglen && !has_z) return libgcc; /* "eh" and other ancient forms */
  if (has_z) {
    uint64_t zlen = mlc_uw_uleb(&r);
    if (r.bad || (uint64_t)(r.end - r.p) < zlen) return libgcc;
    mlc_uw_rd_t z = {r.p, r.p + zlen, false};
    for (size_t i = 1; i < auglen; i++) {
      switch (aug[i]) {
        case 'R': fde_enc = (uint8_t)mlc_uw_fixed(&z, 1); break;
        case 'L': mlc_uw_fixed(&z, 1); break;
        case 'P': mlc_uw_skip_ptr(&z, (uint8_t)mlc_uw_fixed(&z, 1)); break;
        default: return libgcc; /* 'S': a signal frame; anything newer */
      }
    }
    if (z.bad) return libgcc;
    r.p += zlen;
  }
  if (r.bad || c.code_align == 0 || c.ra_reg != MLC_DW_RA) return libgcc;
  mlc_uw_row_t row = {MLC_DW_RSP, 8, false, MLC_RULE_SAME, MLC_RULE_UNDEF, 0, 0};
  if (!mlc_uw_run(&c, &row, &r, 0, UINT64_MAX)) return libgcc;
  c.init = row;
  c.depth = 0;

  /* The FDE: the function's start (bases.func), range, augmentation, instructions. */
  mlc_uw_rd_t f = {fde + 8, fde + 4 + fde_len, false};
  mlc_uw_skip_ptr(&f, fde_enc);        /* pc_begin: bases.func */
  mlc_uw_skip_ptr(&f, fde_enc & 0x0f); /* pc_range: a value, never relative */
  if (has_z) {
    uint64_t zlen = mlc_uw_uleb(&f);
    if (f.bad || (uint64_t)(f.end - f.p) < zlen) return libgcc;
    f.p += zlen;
  }
  uintptr_t func = (uintptr_t)bases.func;
  if (f.bad || !func || pc - 1 < func) return libgcc;
  if (!mlc_uw_run(&c, &row, &f, 0, pc - 1 - func)) return libgcc;

  /* Packed, where it fits the walk. */
  if (row.ra_how == MLC_RULE_UNDEF) return (uint64_t)MLC_UW_END << 56;
  if (row.cfa_other || (row.cfa_reg != MLC_DW_RSP && row.cfa_reg != MLC_DW_RBP) ||
      row.ra_how != MLC_RULE_OFFSET || row.rbp_how == MLC_RULE_OTHER || row.cfa_off != (int32_t)row.cfa_off ||
      row.ra_off != (int8_t)row.ra_off || row.rbp_off != (int16_t)row.rbp_off)
    return libgcc;
  uint64_t flags = MLC_UW_OK | (row.cfa_reg == MLC_DW_RBP ? MLC_UW_CFA_RBP : 0) |
                   (row.rbp_how == MLC_RULE_OFFSET ? MLC_UW_RBP_SAVED : 0) |
                   (row.rbp_how == MLC_RULE_UNDEF ? MLC_UW_RBP_LOST : 0);
  return (uint64_t)(uint32_t)row.cfa_off | (uint64_t)(uint16_t)row.rbp_off << 32 |
         (uint64_t)(uint8_t)row.ra_off << 48 | flags << 56;
}

/* ---- The table ---- */

static uint64_t mlc_uw_rule(uintptr_t pc, uint64_t gen) {
  uint64_t key = pc + (gen << 56);
  size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 40) & (MLC_UW_SLOTS - 1);
  for (unsigned k = 0; k < MLC_UW_PROBES; k++, i = (i + 1) & (MLC_UW_SLOTS - 1)) {
    mlc_uw_slot_t *s = &mlc_uw_table[i];
    uint64_t k1 = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);
    if (k1 == key) {
      uint64_t rule = __atomic_load_n(&s->rule, __ATOMIC_ACQUIRE);
      if (rule && __atomic_load_n(&s->key, __ATOMIC_RELAXED) == key) return rule;
      return mlc_uw_compute(pc); /* being stored, or cleared: not kept twice */
    }
    if (k1 == 0) {
      uint64_t rule = mlc_uw_compute(pc);
      uint64_t expected = 0;
      if (__atomic_compare_exchange_n(&s->key, &expected, key, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        __atomic_store_n(&s->rule, rule, __ATOMIC_RELEASE);
      return rule;
    }
  }
  return mlc_uw_compute(pc); /* a full neighbourhood: computed every time */
}

static int mlc_uw_subs_of(struct dl_phdr_info *info, size_t size, void *arg) {
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
    *(uint64_t *)arg = info->dlpi_subs;
  return 1;
}

/* The generation of the rules: the loader's unload count.  A change clears the table
   (any thread that sees it; readers check keys, so a clear under way is harmless). */
static uint64_t mlc_uw_generation(void) {
  uint64_t subs = 0;
  dl_iterate_phdr(mlc_uw_subs_of, &subs);
  uint64_t gen = subs & 0xff, seen = __atomic_load_n(&mlc_uw_gen, __ATOMIC_RELAXED);
  if (MLC_UNLIKELY(gen != seen) &&
      __atomic_compare_exchange_n(&mlc_uw_gen, &seen, gen, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    for (size_t i = 0; i < MLC_UW_SLOTS; i++) {
      __atomic_store_n(&mlc_uw_table[i].key, 0, __ATOMIC_RELAXED);
      __atomic_store_n(&mlc_uw_table[i].rule, 0, __ATOMIC_RELEASE);
    }
  }
  return gen;
}

MLC_NOINLINE int mlc_stackwalk_take(uintptr_t *out, unsigned max, uintptr_t skip_lo, uintptr_t skip_hi) {
  if (!mlc_uw_table) return -1;
  /* This function keeps a frame pointer (__builtin_frame_address): its caller's rbp is
     saved at fp[0], the return address into it at fp[1], and its caller's rsp after the
     call returns is fp + 2. */
  uintptr_t *fp = __builtin_frame_address(0);
  uintptr_t rbp = fp[0], pc = fp[1], rsp = (uintptr_t)(fp + 2);
  bool rbp_known = true, started = false;
  uint64_t gen = mlc_uw_generation();
  unsigned n = 0;
  while (n < max && pc) {
    if (started || pc < skip_lo || pc >= skip_hi) {
      started = true;
      out[n++] = pc;
      if (n == max) break;
    }
    uint64_t rule = mlc_uw_rule(pc, gen);
    unsigned flags = (unsigned)(rule >> 56);
    if ((flags & MLC_UW_KIND) == MLC_UW_END) break;
    if ((flags & MLC_UW_KIND) != MLC_UW_OK) return -1;
    if ((flags & MLC_UW_CFA_RBP) && !rbp_known) return -1;
    uintptr_t cfa = ((flags & MLC_UW_CFA_RBP) ? rbp : rsp) + (uintptr_t)(int64_t)(int32_t)(uint32_t)rule;
    /* A frame's CFA is above its stack pointer, and not far: else the stack (or a frame
       pointer) is not what the tables say, and the walk ends. */
    if (cfa <= rsp || cfa - rsp > MLC_UW_MAX_FRAME || (cfa & 7)) break;
    uintptr_t next = *(const uintptr_t *)(cfa + (uintptr_t)(int64_t)(int8_t)(uint8_t)(rule >> 48));
    if (flags & MLC_UW_RBP_SAVED) rbp = *(const uintptr_t *)(cfa + (uintptr_t)(int64_t)(int16_t)(uint16_t)(rule >> 32));
    else if (flags & MLC_UW_RBP_LOST) rbp_known = false;
    rsp = cfa;
    pc = next;
  }
  return (int)n;
}

#endif /* MLC_STACKWALK_CACHED */
