/*
 * flashplus.h — the stable C ABI of libflashplus.
 *
 * Why a C ABI: the compiled library links neither torch nor Python, so one binary serves every
 * torch >= 2.4 and every CPython >= 3.9 (loaded with ctypes), and C++ users link it directly.
 * Nothing here throws: every entry point validates all arguments before touching memory and
 * returns a flashplus_status; on failure flashplus_last_error() names the argument and the rule.
 *
 * Argument structs are plain data with a leading `struct_size` (set it to sizeof(the struct)):
 * fields are only ever appended, so an older caller keeps working against a newer library. This
 * library (ABI 1) accepts exactly its own sizes. Use the flashplus_*_args_init() helpers, which
 * zero the struct and set the defaults.
 *
 * Semantics are flash-attn 2.8's unless a field says otherwise:
 *  - layouts: dense (b, s, h, d); varlen (total, h, d) with cu_seqlens (b + 1) int32.
 *  - GQA/MQA: h_q % h_k == 0; query head i uses key head i / (h_q / h_k).
 *  - logits: x = softmax_scale * q.k; if softcap > 0: x = softcap * tanh(x / softcap);
 *            with ALiBi: x += -slope * |i + s_k - s_q - j|  (i query row, j key column, both
 *            counted within the sequence; s_q, s_k that sequence's lengths).
 *            (flash-attn's causal kernel uses slope * j instead; it differs by a per-row
 *            constant, so outputs agree and only the causal+ALiBi LSE differs.)
 *  - masks: causal is aligned bottom-right and equals window (left, 0).
 *            window (left, right), -1 = unbounded: key j is visible to query i iff
 *            i + s_k - s_q - left <= j <= i + s_k - s_q + right.
 *  - a query row that sees no key gets out = 0 and LSE = +inf.
 *  - dropout: P is dropped after normalisation with the Philox keep-mask of
 *            src/common/dropout_philox.h (same bits on every backend), kept entries scaled by
 *            1 / (1 - p). LSE never includes dropout.
 *  - head dims 1..256 (CUDA compiles a set and pads the rest), dtypes fp16 / bf16 (fp32 on CPU).
 *
 * Index tensors (cu_seqlens, seqused_k, leftpad, block_table, cache_seqlens, cache_batch_idx):
 * on CPU their contents are checked before any read (INVALID_ARGUMENT naming the entry). On CUDA
 * validation cannot read them (that would need a device synchronisation per call and would break
 * CUDA-graph capture), so the kernels check every index where they use it: a bad entry is never
 * followed out of bounds. Its sequence reads nothing, outputs that can still be located become
 * NaN, and a FLASHPLUS_INDEX_ERROR_* bit is recorded on the device; flashplus_take_index_errors()
 * returns (and clears) those bits. Shapes, strides, dtypes and devices are checked everywhere.
 *
 * Tensors are pointer + sizes + strides in elements. The last dimension must have stride 1;
 * every other stride is honoured (it may be zero or arbitrary). All tensors of one call live on
 * one device. `stream` is a cudaStream_t for CUDA tensors (NULL = default stream), ignored on CPU.
 */
#ifndef FLASHPLUS_FLASHPLUS_H
#define FLASHPLUS_FLASHPLUS_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define FLASHPLUS_API __declspec(dllexport)
#else
#define FLASHPLUS_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define FLASHPLUS_ABI_VERSION 1
#define FLASHPLUS_MAX_DIMS 6

typedef enum flashplus_status {
  FLASHPLUS_STATUS_OK = 0,
  FLASHPLUS_STATUS_INVALID_ARGUMENT = 1, /* the message names the argument and the rule */
  FLASHPLUS_STATUS_UNSUPPORTED = 2,      /* valid request, but no compiled variant implements it */
  FLASHPLUS_STATUS_NOT_COMPILED = 3,     /* the backend for this device was not built */
  FLASHPLUS_STATUS_DEVICE_ERROR = 4,     /* CUDA reported an error */
  FLASHPLUS_STATUS_OUT_OF_MEMORY = 5,
  FLASHPLUS_STATUS_INTERNAL_ERROR = 6
} flashplus_status;

/* Bits of flashplus_take_index_errors(): which index tensor held a bad entry (CUDA only). */
#define FLASHPLUS_INDEX_ERROR_CU_SEQLENS_Q 0x1u    /* decreasing, negative or past total_q */
#define FLASHPLUS_INDEX_ERROR_CU_SEQLENS_K 0x2u    /* decreasing, negative or past the keys */
#define FLASHPLUS_INDEX_ERROR_SEQUSED_K 0x4u       /* seqused_k / cache_seqlens outside the rows */
#define FLASHPLUS_INDEX_ERROR_LEFTPAD_K 0x8u       /* leftpad_k / cache_leftpad outside [0, end] */
#define FLASHPLUS_INDEX_ERROR_CACHE_BATCH_IDX 0x10u /* outside [0, k_cache.size(0)) */
#define FLASHPLUS_INDEX_ERROR_BLOCK_TABLE 0x20u    /* a page outside [0, num_blocks) */
#define FLASHPLUS_INDEX_ERROR_MAX_SEQLEN 0x40u     /* a sequence longer than max_seqlen_q / _k */

typedef enum flashplus_dtype {
  FLASHPLUS_DTYPE_FLOAT16 = 0,
  FLASHPLUS_DTYPE_BFLOAT16 = 1,
  FLASHPLUS_DTYPE_FLOAT32 = 2,
  FLASHPLUS_DTYPE_INT32 = 3
} flashplus_dtype;

typedef enum flashplus_device_type {
  FLASHPLUS_DEVICE_CPU = 0,
  FLASHPLUS_DEVICE_CUDA = 1
} flashplus_device_type;

/* Flags for the `flags` field of every args struct. */
enum {
  /* Validate shapes, strides, dtypes and devices and check that a backend implements the
   * request, without reading or writing any tensor memory. OK means the call would run. */
  FLASHPLUS_FLAG_DRY_RUN = 1u << 0
};

typedef struct flashplus_tensor {
  void* data;           /* NULL: the optional argument is absent */
  int32_t dtype;        /* flashplus_dtype */
  int32_t device_type;  /* flashplus_device_type */
  int32_t device_index; /* CUDA ordinal; 0 on CPU */
  int32_t ndim;         /* 1..FLASHPLUS_MAX_DIMS */
  int64_t sizes[FLASHPLUS_MAX_DIMS];
  int64_t strides[FLASHPLUS_MAX_DIMS]; /* in elements; strides[ndim - 1] must be 1 */
} flashplus_tensor;

/* ---------------------------------------------------------------------------------------------
 * Forward: out = softmax(logits) @ v, dense or varlen, optionally over a paged K/V.
 * ------------------------------------------------------------------------------------------- */
typedef struct flashplus_fwd_args {
  uint32_t struct_size;
  uint32_t flags;
  flashplus_tensor q;            /* (b, s_q, h_q, d) or (total_q, h_q, d) with cu_seqlens_q */
  flashplus_tensor k;            /* (b, s_k, h_k, d) or (total_k, h_k, d) with cu_seqlens_k,
                                    or paged (num_blocks, page_size, h_k, d) with block_table */
  flashplus_tensor v;            /* shaped like k */
  flashplus_tensor out;          /* written; shaped like q, q's dtype */
  flashplus_tensor softmax_lse;  /* written; fp32 (b, h_q, s_q) or (h_q, total_q) with varlen */
  flashplus_tensor s_dmask;      /* optional debug output, q's dtype or fp32:
                                    (b, h_q, max_s_q, max_s_k). Entry (i, j) holds the final
                                    probability P[i, j] (before the 1 / (1 - p) scaling), negated
                                    where dropout dropped it; entries outside a sequence's
                                    (s_q, s_k) are 0. */
  flashplus_tensor cu_seqlens_q; /* optional int32 (b + 1): present => varlen. Non-decreasing,
                                    [0] == 0, [b] == total_q */
  flashplus_tensor cu_seqlens_k; /* int32 (b + 1), required with cu_seqlens_q. With a paged K/V
                                    only the differences (sequence lengths) are used */
  flashplus_tensor seqused_k;    /* optional int32 (b): only keys [0, seqused_k[i]) of sequence i
                                    are used; must not exceed the sequence's length */
  flashplus_tensor leftpad_k;    /* optional int32 (b): keys of sequence i start at leftpad_k[i]
                                    (so it sees keys [leftpad, end), end = seqused_k or length) */
  flashplus_tensor block_table;  /* optional int32 (b, max_blocks_per_seq): makes K/V paged.
                                    Key j of sequence i lives in page block_table[i, j / page_size]
                                    at row j % page_size (j counts from row 0, leftpad included).
                                    Any page_size >= 1. Only entries covering used rows are read
                                    (and checked to be in [0, num_blocks)). */
  flashplus_tensor alibi_slopes; /* optional fp32 (h_q) or (b, h_q) */
  int32_t max_seqlen_q;          /* varlen: >= every s_q in the batch (sizes s_dmask) */
  int32_t max_seqlen_k;          /* varlen: >= every s_k in the batch (after seqused / leftpad) */
  float softmax_scale;           /* usually 1 / sqrt(d) */
  float softcap;                 /* 0 = off; else > 0 */
  int32_t is_causal;             /* bottom-right aligned; same as window (window_left, 0) */
  int32_t window_left;           /* -1 = unbounded */
  int32_t window_right;          /* -1 = unbounded */
  float dropout_p;               /* in [0, 1) */
  uint64_t philox_seed;
  uint64_t philox_offset;
  int32_t num_splits;            /* split-KV hint: 0 = backend heuristic, 1 = no split, n >= 1 */
  void* stream;
} flashplus_fwd_args;

/* ---------------------------------------------------------------------------------------------
 * Backward of flashplus_fwd (dense or varlen; not paged). Writes dq, dk, dv and
 * softmax_d = rowsum(dout * out) (fp32, shaped like softmax_lse). dk/dv of a GQA group are the
 * sums over its query heads. deterministic != 0 makes results bit-identical across runs.
 * ------------------------------------------------------------------------------------------- */
typedef struct flashplus_bwd_args {
  uint32_t struct_size;
  uint32_t flags;
  flashplus_tensor dout;         /* like q */
  flashplus_tensor q, k, v;      /* as in forward (dense or varlen) */
  flashplus_tensor out;          /* forward output */
  flashplus_tensor softmax_lse;  /* forward LSE, fp32 */
  flashplus_tensor dq;           /* written, like q */
  flashplus_tensor dk, dv;       /* written, like k and v */
  flashplus_tensor softmax_d;    /* written, fp32, like softmax_lse */
  flashplus_tensor cu_seqlens_q; /* optional: varlen, as in forward */
  flashplus_tensor cu_seqlens_k;
  flashplus_tensor alibi_slopes;
  int32_t max_seqlen_q;
  int32_t max_seqlen_k;
  float softmax_scale;
  float softcap;
  int32_t is_causal;
  int32_t window_left;
  int32_t window_right;
  float dropout_p;               /* must equal forward's, with the same seed and offset */
  uint64_t philox_seed;
  uint64_t philox_offset;
  int32_t deterministic;
  void* stream;
} flashplus_bwd_args;

/* ---------------------------------------------------------------------------------------------
 * KV-cache forward (decode and chunked prefill), flash_attn_with_kvcache's contract.
 * For batch entry i, with c = cache_seqlens[i] (absolute row in the cache, counting leftpad):
 *  1. if k_new/v_new are given, they are (after rotary on k_new) written in place into the cache
 *     at rows [c, c + s_new) of cache entry cache_batch_idx[i] (or i);
 *  2. q attends to cache rows [leftpad, c + s_new), i.e. s_k = c + s_new - leftpad.
 * Rotary (rotary_cos present; needs cache_seqlens): applied to the first rotary_dim =
 * 2 * cos.size(1) features of k_new (row r at position c + r) and of q (row r at position c + r
 * when causal or a window bound is >= 0, else every row at position c); the table must hold every
 * position used. rotary_interleaved: pairs (2t, 2t + 1); else (t, t + rd / 2). q, k_new and v_new
 * are only read; q is rotated into scratch memory.
 * ------------------------------------------------------------------------------------------- */
typedef struct flashplus_kvcache_args {
  uint32_t struct_size;
  uint32_t flags;
  flashplus_tensor q;               /* (b, s_q, h_q, d) */
  flashplus_tensor k_cache;         /* (b_cache, s_cache, h_k, d) or paged
                                       (num_blocks, page_size, h_k, d) with block_table; updated */
  flashplus_tensor v_cache;         /* like k_cache; updated */
  flashplus_tensor k_new;           /* optional (b, s_new, h_k, d); needs cache_seqlens, and
                                       c + s_new must fit in the cache */
  flashplus_tensor v_new;           /* optional, with k_new */
  flashplus_tensor rotary_cos;      /* optional (s_ro, rotary_dim / 2), q's dtype */
  flashplus_tensor rotary_sin;      /* with rotary_cos, same shape */
  flashplus_tensor cache_seqlens;   /* optional int32 (b); absent = the whole cache is valid */
  flashplus_tensor cache_batch_idx; /* optional int32 (b): cache entry of batch i (not paged) */
  flashplus_tensor cache_leftpad;   /* optional int32 (b): first valid cache row */
  flashplus_tensor block_table;     /* optional int32 (b, max_blocks_per_seq), any page_size */
  flashplus_tensor alibi_slopes;    /* optional fp32 (h_q) or (b, h_q) */
  flashplus_tensor out;             /* written (b, s_q, h_q, d) */
  flashplus_tensor softmax_lse;     /* written fp32 (b, h_q, s_q); optional */
  float softmax_scale;
  float softcap;
  int32_t is_causal;
  int32_t window_left;
  int32_t window_right;
  int32_t rotary_interleaved;
  int32_t num_splits;               /* 0 = heuristic, n >= 1 splits of the key range */
  void* stream;
} flashplus_kvcache_args;

/* ---------------------------------------------------------------------------------------------
 * Combine: merge partial attention results over disjoint key sets by their LSE.
 *   lse = log(sum_i exp(lse_i)),  out = sum_i exp(lse_i - lse) * out_i
 * A partial whose LSE is +inf or -inf saw no key and contributes nothing; when no partial
 * contributes, out = 0 and lse = +inf. Used by split-KV decode and ring attention.
 * out may be the very tensor of out_partials[0] (same data and strides), and lse that of
 * lse_partials[0]: each element is read before it is written. Varlen data is passed as b = 1.
 * ------------------------------------------------------------------------------------------- */
typedef struct flashplus_combine_args {
  uint32_t struct_size;
  uint32_t flags;
  int32_t num_partials;                  /* >= 1 */
  const flashplus_tensor* out_partials;  /* array of num_partials, each (b, s, h, d), any float */
  const flashplus_tensor* lse_partials;  /* array of num_partials, each fp32 (b, h, s) */
  flashplus_tensor out;                  /* written (b, s, h, d), any float dtype */
  flashplus_tensor lse;                  /* written fp32 (b, h, s); optional */
  void* stream;
} flashplus_combine_args;

/* ---------------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------------- */
FLASHPLUS_API flashplus_status flashplus_fwd(const flashplus_fwd_args* args);
FLASHPLUS_API flashplus_status flashplus_bwd(const flashplus_bwd_args* args);
FLASHPLUS_API flashplus_status flashplus_fwd_kvcache(const flashplus_kvcache_args* args);
FLASHPLUS_API flashplus_status flashplus_combine(const flashplus_combine_args* args);

/* Zero the struct and set struct_size and defaults (window -1/-1, num_splits 0). */
FLASHPLUS_API void flashplus_fwd_args_init(flashplus_fwd_args* args);
FLASHPLUS_API void flashplus_bwd_args_init(flashplus_bwd_args* args);
FLASHPLUS_API void flashplus_kvcache_args_init(flashplus_kvcache_args* args);
FLASHPLUS_API void flashplus_combine_args_init(flashplus_combine_args* args);

/* Text of the last failure on this thread ("" when the last call succeeded). Valid until the
 * next flashplus call on the same thread. */
FLASHPLUS_API const char* flashplus_last_error(void);

/* Waits for the device's work to finish, then stores in *flags the FLASHPLUS_INDEX_ERROR_* bits
 * that kernels on CUDA device `device_index` recorded since the previous call, and clears them.
 * 0 when every index was valid. A build without CUDA answers OK with 0 (nothing can be recorded).
 * It synchronises: call it to debug or after a batch of work, not after every call. */
FLASHPLUS_API flashplus_status flashplus_take_index_errors(int32_t device_index, uint32_t* flags);
FLASHPLUS_API const char* flashplus_status_name(flashplus_status status);

FLASHPLUS_API const char* flashplus_version(void); /* "0.1.0" */
FLASHPLUS_API uint32_t flashplus_abi_version(void); /* FLASHPLUS_ABI_VERSION of the library */

/* JSON: {"version", "abi", "backends": {"cpu": {...}, "cuda": {"compiled", "archs", "head_dims",
 * "dtypes", "variants"}}, "preset"}. Static storage, never freed. */
FLASHPLUS_API const char* flashplus_build_info_json(void);

/* Is the backend for this device type compiled in and usable (a CUDA device present)? OK if so;
 * else NOT_COMPILED or DEVICE_ERROR with the reason in flashplus_last_error(). For a full request
 * ("would this exact call run here?") pass FLASHPLUS_FLAG_DRY_RUN to the entry point itself. */
FLASHPLUS_API flashplus_status flashplus_backend_status(int32_t device_type, int32_t device_index);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FLASHPLUS_FLASHPLUS_H */
