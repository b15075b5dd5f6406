// cuda_backend.cu — the cuda:: functions of src/backend.h: device checks, variant selection,
// parameter packing and launches of forward (with split-KV combine and S_dmask), backward,
// KV-cache append and combine. Host code only; kernels are reached through launch.h, so this file
// never parses CuTe.
//
// Variant choice: the sm80 path serves every GPU of compute capability >= 8.0. Among the compiled
// variants of the request's direction, dtype and dropout flag, the smallest head dim >= the
// request's wins (a head dim of 72 runs the 96 kernel, or the 128 one when 96 is not compiled).
// Anything else (no such variant, too little shared memory on the device) is UNSUPPORTED with a
// message naming the missing variant and what the build has.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>

#include <cuda_runtime.h>

#include "backend.h"
#include "launch.h"
#include "split_heuristic.h"
#include "tile_scheduler.cuh"

namespace flashplus {
namespace kernels {
#include "dispatch_table.inc"

cudaError_t check_kernel_image();  // launch_combine.cu
}  // namespace kernels

namespace cuda {
namespace {

// FLASHPLUS_INDEX_ERROR_* bits that kernels record when an index tensor holds a bad entry. A
// __device__ variable, not an allocation: it exists on every device the module is loaded on, and
// taking its address needs no allocation during CUDA-graph capture.
__device__ uint32_t g_index_errors;

// Its address on the current device, looked up once per device (a runtime call per launch
// would cost more than the check it serves).
uint32_t* index_error_word() {
  constexpr int kMaxDevices = 64;
  static std::atomic<uint32_t*> addresses[kMaxDevices] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0) return nullptr;
  if (device < kMaxDevices) {
    if (uint32_t* known = addresses[device].load(std::memory_order_relaxed)) return known;
  }
  void* address = nullptr;
  if (cudaGetSymbolAddress(&address, g_index_errors) != cudaSuccess) return nullptr;
  if (device < kMaxDevices) addresses[device].store(static_cast<uint32_t*>(address), std::memory_order_relaxed);
  return static_cast<uint32_t*>(address);
}

using kernels::BwdParams;
using kernels::BwdVariant;
using kernels::FwdParams;
using kernels::FwdVariant;
using kernels::kBwdVariants;
using kernels::kFwdVariants;
using kernels::kMaxSplits;

// Makes device_index current for the scope; restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device_index) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device_index) status_ = cudaSetDevice(device_index);
  }
  ~DeviceGuard() {
    if (previous_ >= 0 && status_ == cudaSuccess) cudaSetDevice(previous_);
  }
  cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
};

Status device_error(const char* what, cudaError_t error) {
  cudaGetLastError();  // clear the sticky-free error state so the next call starts clean
  const flashplus_status code =
      error == cudaErrorMemoryAllocation ? FLASHPLUS_STATUS_OUT_OF_MEMORY : FLASHPLUS_STATUS_DEVICE_ERROR;
  return Status::error(code, std::string(what) + ": " + cudaGetErrorName(error) + " (" +
                                 cudaGetErrorString(error) + ")");
}

const char* dtype_tag(flashplus_dtype dtype) {
  switch (dtype) {
    case FLASHPLUS_DTYPE_FLOAT16: return "fp16";
    case FLASHPLUS_DTYPE_BFLOAT16: return "bf16";
    case FLASHPLUS_DTYPE_FLOAT32: return "fp32";
    default: return "int32";
  }
}

template <typename Variant, size_t N>
std::string compiled_variant_list(const Variant (&table)[N]) {
  std::string names;
  for (const Variant& v : table) names += (names.empty() ? "" : ", ") + std::string(v.name);
  return names;
}

// Variants picked only after the general one, by path, query length and K/V layout
// (select_fwd_variant).
bool is_specialised(const FwdVariant& v) {
  return v.path != kernels::KernelPath::kSm80 || v.decode_tile || v.kv_load != kernels::KvLoad::kAny;
}
bool is_specialised(const BwdVariant& v) { return v.path != kernels::KernelPath::kSm80; }

// Smallest compiled head dim >= the request among general sm80 variants of the dtype and dropout flag.
template <typename Variant, size_t N>
const Variant* find_variant(const Variant (&table)[N], flashplus_dtype dtype, int head_dim, bool dropout, int arch) {
  const Variant* best = nullptr;
  for (const Variant& v : table) {
    if (v.dtype != dtype || v.has_dropout != dropout || v.head_dim < head_dim || !v.runs_on(arch)) continue;
    if (is_specialised(v)) continue;  // picked afterwards, by query length and K/V layout (select_fwd_variant)
    if (!best || v.head_dim < best->head_dim) best = &v;
  }
  return best;
}

// What the host side needs to know of a device, queried once per device: every attention call
// needs it, and the attribute queries and the kernel-image check cost microseconds per call, which
// short calls (decode, s = 512) would pay on top of the kernels.
struct DeviceInfo {
  int arch = 0;            // compute capability x10
  int multiprocessors = 1;
  int max_dynamic_smem = 48 * 1024;  // opt-in limit per block
  int smem_per_sm = 100 * 1024;
  // The split-KV combine may be launched early (programmatic dependent launch): compute capability
  // >= 9.0 running combine code compiled for sm90 or newer (launch_combine.cu says why).
  bool combine_launches_early = false;
};

constexpr int kMaxCachedDevices = 64;

// Only successful lookups are cached, so a failure is reported again on the next call.
Status device_info(int device_index, DeviceInfo& info) {
  static std::mutex mutex;
  static DeviceInfo known[kMaxCachedDevices];
  static std::atomic<bool> valid[kMaxCachedDevices] = {};
  const bool cacheable = device_index >= 0 && device_index < kMaxCachedDevices;
  if (cacheable && valid[device_index].load(std::memory_order_acquire)) {
    info = known[device_index];
    return Status::ok();
  }
  int major = 0, minor = 0;
  cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_index);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device_index);
  if (e != cudaSuccess) return device_error("cudaDeviceGetAttribute(compute capability)", e);
  DeviceInfo fresh;
  fresh.arch = major * 10 + minor;
  if (cudaDeviceGetAttribute(&fresh.multiprocessors, cudaDevAttrMultiProcessorCount, device_index) != cudaSuccess) {
    cudaGetLastError();
    fresh.multiprocessors = 1;
  }
  if (cudaDeviceGetAttribute(&fresh.max_dynamic_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_index) !=
      cudaSuccess) {
    cudaGetLastError();
    fresh.max_dynamic_smem = 48 * 1024;
  }
  if (cudaDeviceGetAttribute(&fresh.smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device_index) !=
      cudaSuccess) {
    cudaGetLastError();
    fresh.smem_per_sm = 100 * 1024;
  }
  int combine_ptx = 0;
  if (fresh.arch >= 90) {
    DeviceGuard guard(device_index);  // the kernel attributes are those of the current device's image
    if (guard.status() != cudaSuccess || kernels::split_combine_ptx_version(combine_ptx) != cudaSuccess) {
      cudaGetLastError();
      combine_ptx = 0;
    }
  }
  fresh.combine_launches_early = fresh.arch >= 90 && combine_ptx >= 90;
  info = fresh;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(mutex);
    known[device_index] = fresh;
    valid[device_index].store(true, std::memory_order_release);
  }
  return Status::ok();
}

// Compute capability x10 of a device, or a failure.
Status device_arch(int device_index, int& arch) {
  DeviceInfo info;
  Status s = device_info(device_index, info);
  arch = info.arch;
  return s;
}

int multiprocessor_count(int device_index) {
  DeviceInfo info;
  return device_info(device_index, info).is_ok() ? info.multiprocessors : 1;
}

int max_dynamic_smem(int device_index) {
  DeviceInfo info;
  return device_info(device_index, info).is_ok() ? info.max_dynamic_smem : 48 * 1024;
}

int smem_per_sm(int device_index) {
  DeviceInfo info;
  return device_info(device_index, info).is_ok() ? info.smem_per_sm : 100 * 1024;
}

// Common checks of a forward or backward request; finds its variant in `table`.
template <typename Variant, size_t N>
Status select_variant(const char* direction, const Variant (&table)[N], flashplus_dtype dtype, int head_dim,
                      bool dropout, int device_index, const Variant*& variant) {
  if (dtype != FLASHPLUS_DTYPE_FLOAT16 && dtype != FLASHPLUS_DTYPE_BFLOAT16)
    return Status::error(FLASHPLUS_STATUS_UNSUPPORTED, std::string("CUDA ") + direction +
                                                           " supports fp16 and bf16 inputs, got " + dtype_tag(dtype) +
                                                           " (the CPU backend computes fp32)");
  int arch = 0;
  Status s = device_arch(device_index, arch);
  if (!s.is_ok()) return s;
  if (arch < 80)
    return Status::error(FLASHPLUS_STATUS_UNSUPPORTED,
                         std::string("CUDA ") + direction + " needs compute capability >= 8.0 (sm80 path), device " +
                             std::to_string(device_index) + " has " + std::to_string(arch / 10) + "." +
                             std::to_string(arch % 10));
  variant = find_variant(table, dtype, head_dim, dropout, arch);
  if (!variant) {
    std::ostringstream os;
    os << "CUDA " << direction << ": no compiled variant " << (direction[0] == 'f' ? "fwd" : "bwd") << "_sm80_"
       << dtype_tag(dtype) << "_hd" << head_dim << (dropout ? "_dropout" : "") << ": no compiled head dim >= "
       << head_dim << " (this build, preset " FLASHPLUS_PRESET_NAME ", has: " << compiled_variant_list(table)
       << "; FLASHPLUS_PRESET=full compiles head dims 64..256, fp16 and bf16)";
    return Status::error(FLASHPLUS_STATUS_UNSUPPORTED, os.str());
  }
  const int needed = variant->smem_bytes(2);
  const int available = max_dynamic_smem(device_index);
  if (needed > available)
    return Status::error(FLASHPLUS_STATUS_UNSUPPORTED,
                         std::string(variant->name) + " needs " + std::to_string(needed) +
                             " bytes of shared memory per block, device " + std::to_string(device_index) +
                             " allows " + std::to_string(available));
  return Status::ok();
}

// Packed GQA (query_rows.cuh) for short queries: a decode step with G query heads per K/V head
// then reads each K/V tile once per group instead of once per query head. Not with ALiBi or
// dropout: their slope and random stream are per query head, applied per tile. Up to 64 queries
// (half the big tile), so that a packed tile still holds at least two query heads.
constexpr int kPackGqaMaxQueries = 64;

bool packs_gqa(const FwdProblem& p) {
  return p.h_q > p.h_k && p.mods.alibi_slopes == nullptr && !(p.dropout.p > 0.f) &&
         p.seqs.max_seqlen_q <= kPackGqaMaxQueries;
}

// Rows of the tiles of one (batch entry, head or packed group).
int64_t tile_rows(const FwdProblem& p) {
  return static_cast<int64_t>(p.seqs.max_seqlen_q) * (packs_gqa(p) ? p.h_q / p.h_k : 1);
}

bool aligned16(const void* data, int64_t a, int64_t b, int64_t c, int element_size) {
  const int64_t elements = 16 / element_size;
  return reinterpret_cast<uintptr_t>(data) % 16 == 0 && a % elements == 0 && b % elements == 0 &&
         c % elements == 0;
}

// Whether K and V fit a specialised K/V loader (KvLoad, tile_shape.h) of a variant whose tiles
// have `threads` threads: 16-byte copies allowed, whole rows per pass, and rows a fixed stride
// apart (kStrided) or paged (kPaged). The same tests the general loader makes per CTA
// (key_tile_loader_sm80.cuh).
bool kv_layout_fits(const FwdProblem& p, kernels::KvLoad kv_load, int compiled_head_dim, int threads) {
  const int element_size = 2;
  auto aligned = [&](const RowsView& v) {
    return aligned16(v.data, v.batch_stride, v.row_stride, v.head_stride, element_size);
  };
  const bool paged = p.seqs.block_table != nullptr;
  if (kv_load == kernels::KvLoad::kAny) return true;
  if (paged != (kv_load == kernels::KvLoad::kPaged)) return false;
  // The paged loader's row table holds one offset per key row for both K and V.
  if (paged && (p.k.batch_stride != p.v.batch_stride || p.k.row_stride != p.v.row_stride)) return false;
  return p.head_dim % 8 == 0 && aligned(p.k) && aligned(p.v) && kernels::fixed_column_loads(compiled_head_dim, threads);
}

// A variant of the same dtype, head dim, dropout and architecture as `base` with the given tile,
// whose K/V loader fits this call's layout (the specialised one when there is one), or nullptr.
const FwdVariant* fitting_sibling(const FwdProblem& p, const FwdVariant& base, bool decode_tile) {
  const FwdVariant* general = nullptr;
  for (const FwdVariant& v : kFwdVariants) {
    if (v.dtype != base.dtype || v.head_dim != base.head_dim || v.path != base.path ||
        v.has_dropout != base.has_dropout || v.decode_tile != decode_tile)
      continue;
    if (v.kv_load == kernels::KvLoad::kAny) {
      general = &v;
    } else if (kv_layout_fits(p, v.kv_load, v.head_dim, v.load_threads())) {
      return &v;
    }
  }
  return general;
}

// FLASHPLUS_KERNEL_PATH: unset or "auto" runs each forward and backward on the fastest path that
// serves it; "sm80" keeps every call on the sm80 kernels (A/B timing, testing that path on
// Hopper); "sm90" makes a forward or backward the sm90 path cannot serve UNSUPPORTED with the
// reason (tests that must run the wgmma kernels). Read per call (a getenv costs well under a
// microsecond), so a process may switch.
enum class PathChoice { kAuto, kSm80, kSm90 };

Status path_choice(PathChoice& choice) {
  const char* value = std::getenv("FLASHPLUS_KERNEL_PATH");
  choice = PathChoice::kAuto;
  if (!value || !*value || std::strcmp(value, "auto") == 0) return Status::ok();
  if (std::strcmp(value, "sm80") == 0) {
    choice = PathChoice::kSm80;
  } else if (std::strcmp(value, "sm90") == 0) {
    choice = PathChoice::kSm90;
  } else {
    return Status::error(FLASHPLUS_STATUS_INVALID_ARGUMENT,
                         std::string("environment variable FLASHPLUS_KERNEL_PATH must be auto, sm80 or sm90, got '") +
                             value + "'");
  }
  return Status::ok();
}

// K/V layouts a variant's loader reads: the forward's is a variant policy; the backward reads K/V
// rows a fixed stride apart (dense or varlen, never paged).
kernels::KvLoad kv_load_of(const FwdVariant& v) { return v.kv_load; }
kernels::KvLoad kv_load_of(const BwdVariant&) { return kernels::KvLoad::kStrided; }

// Whether the sm90 path may serve a call at all: compute capability 9.0 and no dropout (the sm90
// kernels have no Philox mask). Shared by the forward and the backward.
bool sm90_path_may_serve(int device_index, bool dropout, std::string& why_not) {
  int arch = 0;
  if (!device_arch(device_index, arch).is_ok() || arch != 90) {
    why_not = "the device is not compute capability 9.0";
    return false;
  }
  if (dropout) {
    why_not = "dropout runs on the sm80 path";
    return false;
  }
  return true;
}

// The sm90 twin of the sm80 variant `base` in `table`: same dtype and the same compiled head dim
// (so a head dim never pays more padding on sm90 than on sm80), if the call's K/V layout suits
// its loader and the device's shared memory holds it; else nullptr with the reason in why_not.
template <typename Variant, size_t N>
const Variant* sm90_twin(const Variant (&table)[N], const Variant& base, const FwdProblem& forward,
                         const char* kv_rule, int device_index, std::string& why_not) {
  for (const Variant& v : table) {
    if (v.path != kernels::KernelPath::kSm90 || v.dtype != base.dtype || v.head_dim != base.head_dim) continue;
    if (!kv_layout_fits(forward, kv_load_of(v), v.head_dim, v.load_threads())) {
      why_not = kv_rule;
      return nullptr;
    }
    if (v.smem_bytes(2) > max_dynamic_smem(device_index)) {
      why_not = std::string(v.name) + " needs more shared memory than the device allows";
      return nullptr;
    }
    return &v;
  }
  why_not = std::string("this build has no sm90 twin of ") + base.name;
  return nullptr;
}

// The sm90 (wgmma) forward variant serving this call in place of the sm80 variant `base`, or
// nullptr with the reason in why_not. It covers the training and prefill shapes: no dropout, more
// than 16 tile rows (shorter calls run the decode tile), K/V rows a fixed stride apart
// with 16-byte rows.
const FwdVariant* sm90_variant(const FwdProblem& p, const FwdVariant& base, std::string& why_not) {
  if (!sm90_path_may_serve(p.device.index, base.has_dropout, why_not)) return nullptr;
  if (tile_rows(p) <= kernels::fwd_tile_shape_sm80(base.head_dim, true).block_m) {
    why_not = "calls with at most 16 tile rows run the sm80 decode tile";
    return nullptr;
  }
  return sm90_twin(kFwdVariants, base, p,
                   "K/V must be dense or varlen (not paged), 16-byte aligned, with head_dim % 8 == 0", p.device.index,
                   why_not);
}

// The general big-tile sm80 variant for the dtype / head dim / dropout, swapped for the sm90
// variant where that path serves the call, else for the decode-tile variant of the same head dim
// when every tile has at most 16 rows (decode, speculative decoding) and one of its loaders fits
// the K/V layout, else for the big tile's strided-only variant when K/V allow it (dense and varlen
// layouts).
Status select_fwd_variant(const FwdProblem& p, const FwdVariant*& variant) {
  PathChoice choice;
  Status s = path_choice(choice);
  if (!s.is_ok()) return s;
  s = select_variant("forward", kFwdVariants, p.q.dtype, p.head_dim, p.dropout.p > 0.f, p.device.index, variant);
  if (!s.is_ok()) return s;
  if (p.s_dmask && !p.lse.data)
    return Status::error(FLASHPLUS_STATUS_UNSUPPORTED, "CUDA forward: s_dmask needs softmax_lse to be written");
  if (choice != PathChoice::kSm80) {
    std::string why_not;
    const FwdVariant* sm90 = sm90_variant(p, *variant, why_not);
    if (sm90) {
      variant = sm90;
      return Status::ok();
    }
    if (choice == PathChoice::kSm90)
      return Status::error(FLASHPLUS_STATUS_UNSUPPORTED,
                           "FLASHPLUS_KERNEL_PATH=sm90: the sm90 forward does not serve this call: " + why_not);
  }
  if (variant->has_dropout) return Status::ok();
  if (tile_rows(p) <= kernels::fwd_tile_shape_sm80(variant->head_dim, true).block_m) {
    const FwdVariant* decode = fitting_sibling(p, *variant, true);
    if (decode) {
      variant = decode;
      return Status::ok();
    }
  }
  const FwdVariant* big = fitting_sibling(p, *variant, false);
  if (big) variant = big;
  return Status::ok();
}

// The forward a backward call recomputes: its inputs, sequences and logit rule.
FwdProblem recomputed_forward(const BwdProblem& problem) {
  FwdProblem forward;
  forward.device = problem.device;
  forward.h_q = problem.h_q;
  forward.h_k = problem.h_k;
  forward.head_dim = problem.head_dim;
  forward.seqs = problem.seqs;
  forward.q = problem.q;
  forward.k = problem.k;
  forward.v = problem.v;
  forward.out = problem.out;
  forward.lse = problem.lse;
  forward.mods = problem.mods;
  forward.dropout = problem.dropout;
  return forward;
}

// The sm90 (wgmma) backward variant serving this call in place of the sm80 variant `base`, or
// nullptr with the reason in why_not: no dropout, the fused (not the deterministic) mode, K/V with
// 16-byte rows (dense or varlen: the backward never reads paged K/V).
const BwdVariant* sm90_bwd_variant(const BwdProblem& p, const BwdVariant& base, std::string& why_not) {
  if (!sm90_path_may_serve(p.device.index, base.has_dropout, why_not)) return nullptr;
  if (p.deterministic) {
    why_not = "the deterministic backward runs on the sm80 path (two kernels, no atomics)";
    return nullptr;
  }
  return sm90_twin(kBwdVariants, base, recomputed_forward(p), "K/V must be 16-byte aligned, with head_dim % 8 == 0",
                   p.device.index, why_not);
}

// The sm80 variant for the dtype / head dim / dropout, swapped for the sm90 one where that path
// serves the call (FLASHPLUS_KERNEL_PATH as for the forward).
Status select_bwd_variant(const BwdProblem& p, const BwdVariant*& variant) {
  PathChoice choice;
  Status s = path_choice(choice);
  if (!s.is_ok()) return s;
  s = select_variant("backward", kBwdVariants, p.q.dtype, p.head_dim, p.dropout.p > 0.f, p.device.index, variant);
  if (!s.is_ok() || choice == PathChoice::kSm80) return s;
  std::string why_not;
  const BwdVariant* sm90 = sm90_bwd_variant(p, *variant, why_not);
  if (sm90) {
    variant = sm90;
    return Status::ok();
  }
  if (choice == PathChoice::kSm90)
    return Status::error(FLASHPLUS_STATUS_UNSUPPORTED,
                         "FLASHPLUS_KERNEL_PATH=sm90: the sm90 backward does not serve this call: " + why_not);
  return Status::ok();
}


kernels::RowsAddr rows_addr(const RowsView& v) {
  kernels::RowsAddr a;
  a.data = v.data;
  a.batch_stride = v.batch_stride;
  a.row_stride = v.row_stride;
  a.head_stride = v.head_stride;
  const int element_size = v.dtype == FLASHPLUS_DTYPE_FLOAT32 ? 4 : 2;
  a.aligned16 = aligned16(v.data, v.batch_stride, v.row_stride, v.head_stride, element_size);
  return a;
}

FwdParams make_fwd_params(const FwdProblem& p, const FwdVariant& variant) {
  FwdParams f;
  f.q = rows_addr(p.q);
  f.k = rows_addr(p.k);
  f.v = rows_addr(p.v);
  f.out = rows_addr(p.out);
  f.lse = {p.lse.data, p.lse.batch_stride, p.lse.head_stride, p.lse.row_stride};
  f.batch = p.seqs.batch;
  f.h_q = p.h_q;
  f.h_k = p.h_k;
  f.head_dim = p.head_dim;
  f.group_size = p.h_q / p.h_k;
  f.pack_gqa = packs_gqa(p);
  const int block_m = variant.tile().block_m;
  f.num_m_blocks = static_cast<int>((tile_rows(p) + block_m - 1) / block_m);
  f.max_seqlen_q = p.seqs.max_seqlen_q;
  f.max_seqlen_k = p.seqs.max_seqlen_k;
  f.cu_seqlens_q = p.seqs.cu_seqlens_q;
  f.cu_seqlens_k = p.seqs.cu_seqlens_k;
  f.seqused_k = p.seqs.seqused_k;
  f.seqused_k_extra = p.seqs.seqused_k_extra;
  f.leftpad_k = p.seqs.leftpad_k;
  f.cache_batch_idx = p.seqs.cache_batch_idx;
  f.block_table = p.seqs.block_table;
  f.block_table_batch_stride = p.seqs.block_table_batch_stride;
  f.page_size = p.seqs.page_size;
  f.max_blocks_per_seq = p.seqs.max_blocks_per_seq;
  f.q_rows_total = p.seqs.total_q;
  f.kv_entries = p.seqs.kv_entries;
  f.kv_capacity = p.seqs.kv_capacity;
  f.index_errors = index_error_word();
  f.softmax_scale = p.mods.softmax_scale;
  f.softcap = p.mods.softcap;
  f.window_left = p.mods.window_left;
  f.window_right = p.mods.window_right;
  f.alibi_slopes = p.mods.alibi_slopes;
  f.alibi_batch_stride = p.mods.alibi_batch_stride;
  f.alibi_head_stride = p.mods.alibi_head_stride;
  f.dropout = p.dropout.stream;
  f.dropout_rescale = p.dropout.p > 0.f ? 1.f / (1.f - p.dropout.p) : 1.f;
  return f;
}

// The split-KV count for num_splits = 0 (split_heuristic.h says how it is chosen).
int choose_num_splits(const FwdProblem& p, const FwdParams& f, const FwdVariant& variant) {
  const kernels::TileShape tile = variant.tile();
  kernels::SplitGrid grid;
  grid.ctas = static_cast<int64_t>(f.num_m_blocks) * f.batch * kernels::StaticTileScheduler::heads(f);
  grid.key_tiles = std::max(1, (p.seqs.max_seqlen_k + tile.block_n - 1) / tile.block_n);
  grid.sms = multiprocessor_count(p.device.index);
  grid.slots = grid.sms * kernels::ctas_per_sm(tile, variant.smem_bytes(2), smem_per_sm(p.device.index));
  grid.decode_tile = variant.decode_tile;
  grid.paged_kv = f.block_table != nullptr;
  return kernels::choose_splits(grid, p.num_splits);
}

// Describes an (b, s, h, d) fp32 workspace slice as a combine partial.
kernels::CombinePartial dense_partial(const float* out, const float* lse, int64_t s, int64_t h, int64_t d) {
  kernels::CombinePartial part;
  part.out = out;
  part.dtype = FLASHPLUS_DTYPE_FLOAT32;
  part.out_head_stride = d;
  part.out_row_stride = h * d;
  part.out_batch_stride = s * h * d;
  part.lse = lse;
  part.lse_row_stride = 1;
  part.lse_head_stride = s;
  part.lse_batch_stride = h * s;
  return part;
}

void set_combine_output(kernels::CombineParams& c, const RowsView& out, const RowStatsView& lse) {
  c.out = out.data;
  c.out_dtype = out.dtype;
  c.out_batch_stride = out.batch_stride;
  c.out_row_stride = out.row_stride;
  c.out_head_stride = out.head_stride;
  c.lse = lse.data;
  c.lse_batch_stride = lse.batch_stride;
  c.lse_head_stride = lse.head_stride;
  c.lse_row_stride = lse.row_stride;
}

// Stream-ordered scratch, freed on every exit path.
class ScopedWorkspace {
 public:
  ScopedWorkspace(cudaStream_t stream) : stream_(stream) {}
  ~ScopedWorkspace() {
    if (ptr_) cudaFreeAsync(ptr_, stream_);
  }
  cudaError_t allocate(size_t bytes) { return cudaMallocAsync(&ptr_, bytes, stream_); }
  void* get() const { return ptr_; }

 private:
  cudaStream_t stream_;
  void* ptr_ = nullptr;
};

}  // namespace

bool compiled() { return true; }

// Checked in full once per device; later calls only confirm the index (a device that passed
// stays usable for the process, and the checks below cost more than a short kernel).
Status device_status(int device_index) {
  static std::atomic<bool> ready[kMaxCachedDevices] = {};
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return device_error("no usable CUDA driver or device (cudaGetDeviceCount)", e);
  if (device_index < 0 || device_index >= count)
    return Status::error(FLASHPLUS_STATUS_DEVICE_ERROR, "CUDA device " + std::to_string(device_index) +
                                                            " does not exist (" + std::to_string(count) +
                                                            " visible)");
  const bool cacheable = device_index < kMaxCachedDevices;
  if (cacheable && ready[device_index].load(std::memory_order_acquire)) return Status::ok();
  int arch = 0;
  Status s = device_arch(device_index, arch);
  if (!s.is_ok()) return s;
  if (arch < 80)
    return Status::error(FLASHPLUS_STATUS_DEVICE_ERROR,
                         "CUDA device " + std::to_string(device_index) + " has compute capability " +
                             std::to_string(arch / 10) + "." + std::to_string(arch % 10) +
                             "; flashplus kernels need >= 8.0");
  DeviceGuard guard(device_index);
  if (guard.status() != cudaSuccess) return device_error("cudaSetDevice", guard.status());
  e = kernels::check_kernel_image();
  if (e != cudaSuccess)
    return device_error(("this build (preset " FLASHPLUS_PRESET_NAME ") has no kernel image for compute capability " +
                         std::to_string(arch / 10) + "." + std::to_string(arch % 10))
                            .c_str(),
                        e);
  if (cacheable) ready[device_index].store(true, std::memory_order_release);
  return Status::ok();
}

Status supports_fwd(const FwdProblem& problem) {
  const FwdVariant* variant = nullptr;
  return select_fwd_variant(problem, variant);
}

Status fwd(const FwdProblem& problem) {
  const FwdVariant* variant = nullptr;
  Status s = select_fwd_variant(problem, variant);
  if (!s.is_ok()) return s;
  DeviceGuard guard(problem.device.index);
  if (guard.status() != cudaSuccess) return device_error("cudaSetDevice", guard.status());
  cudaStream_t stream = static_cast<cudaStream_t>(problem.stream);

  FwdParams params = make_fwd_params(problem, *variant);
  params.num_splits = choose_num_splits(problem, params, *variant);
  ScopedWorkspace workspace(stream);
  const int64_t rows = static_cast<int64_t>(params.batch) * params.max_seqlen_q;
  const int64_t out_split_elems = rows * params.h_q * variant->head_dim;
  const int64_t lse_split_elems = rows * params.h_q;
  if (params.num_splits > 1) {
    const size_t bytes = sizeof(float) * params.num_splits * (out_split_elems + lse_split_elems);
    cudaError_t e = workspace.allocate(bytes);
    if (e != cudaSuccess) return device_error("split-KV workspace (cudaMallocAsync)", e);
    params.out_partial = static_cast<float*>(workspace.get());
    params.lse_partial = params.out_partial + params.num_splits * out_split_elems;
  }

  cudaError_t e = variant->launch(params, stream);
  if (e != cudaSuccess) return device_error((std::string("launch of ") + variant->name).c_str(), e);

  if (params.num_splits > 1) {
    kernels::SplitCombineParams c;
    c.out_partial = params.out_partial;
    c.lse_partial = params.lse_partial;
    c.num_splits = params.num_splits;
    c.batch = params.batch;
    c.max_seqlen_q = params.max_seqlen_q;
    c.heads = params.h_q;
    c.head_dim = params.head_dim;
    c.padded_head_dim = variant->head_dim;
    c.out = problem.out.data;
    c.out_dtype = problem.out.dtype;
    c.out_batch_stride = problem.out.batch_stride;
    c.out_row_stride = problem.out.row_stride;
    c.out_head_stride = problem.out.head_stride;
    c.lse = problem.lse.data;
    c.lse_batch_stride = problem.lse.batch_stride;
    c.lse_head_stride = problem.lse.head_stride;
    c.lse_row_stride = problem.lse.row_stride;
    c.out_cu_seqlens = problem.seqs.cu_seqlens_q;
    c.out_rows_total = problem.seqs.total_q;
    // FLASHPLUS_COMBINE_PDL=0: the plain launch (A/B timing; read per call).
    const char* pdl = std::getenv("FLASHPLUS_COMBINE_PDL");
    DeviceInfo info;
    const bool launch_early = !(pdl && std::strcmp(pdl, "0") == 0) &&
                              device_info(problem.device.index, info).is_ok() && info.combine_launches_early;
    e = kernels::launch_split_combine(c, launch_early, stream);
    if (e != cudaSuccess) return device_error("launch of the split-KV combine kernel", e);
  }

  if (problem.s_dmask) {
    kernels::DmaskParams m;
    m.data = problem.s_dmask;
    m.dtype = problem.s_dmask_dtype;
    for (int i = 0; i < 4; ++i) m.strides[i] = problem.s_dmask_strides[i];
    m.rows = problem.seqs.max_seqlen_q;
    m.cols = problem.seqs.max_seqlen_k;
    m.has_dropout = problem.dropout.p > 0.f;
    e = kernels::launch_dmask(params, m, problem.q.dtype, stream);
    if (e != cudaSuccess) return device_error("launch of the s_dmask kernel", e);
  }
  return Status::ok();
}

Status supports_bwd(const BwdProblem& problem) {
  const BwdVariant* variant = nullptr;
  return select_bwd_variant(problem, variant);
}

// Pre-pass D = rowsum(dO * O), then the backward kernels: by default the fused dK/dV/dQ kernel
// with its fp32 dQ buffer (atomics; the summation order varies), with problem.deterministic the
// atomic-free two-kernel mode (bwd_kernel_sm80.cuh).
Status bwd(const BwdProblem& problem) {
  const BwdVariant* variant = nullptr;
  Status s = select_bwd_variant(problem, variant);
  if (!s.is_ok()) return s;
  DeviceGuard guard(problem.device.index);
  if (guard.status() != cudaSuccess) return device_error("cudaSetDevice", guard.status());

  const FwdProblem forward = recomputed_forward(problem);
  const FwdVariant reference{variant->name,        variant->path, variant->dtype, variant->head_dim,
                             variant->has_dropout, false,         kernels::KvLoad::kAny, nullptr};
  BwdParams params;
  params.fwd = make_fwd_params(forward, reference);
  params.fwd.num_splits = 1;
  params.fwd.pack_gqa = false;  // the backward kernels index query heads directly
  params.dout = rows_addr(problem.dout);
  params.dq = rows_addr(problem.dq);
  params.dk = rows_addr(problem.dk);
  params.dv = rows_addr(problem.dv);
  params.softmax_d = {problem.softmax_d.data, problem.softmax_d.batch_stride, problem.softmax_d.head_stride,
                      problem.softmax_d.row_stride};
  const kernels::TileShape tile = kernels::bwd_tile_shape_sm80(variant->head_dim);
  params.num_m_blocks = (problem.seqs.max_seqlen_q + tile.block_m - 1) / tile.block_m;
  params.num_n_blocks = (problem.seqs.max_seqlen_k + tile.block_n - 1) / tile.block_n;
  const cudaStream_t stream = static_cast<cudaStream_t>(problem.stream);
  ScopedWorkspace dq_accum(stream);
  if (!problem.deterministic) {
    const bool varlen = problem.seqs.cu_seqlens_q != nullptr;
    const int64_t rows =
        kernels::dq_accum_rows(problem.seqs.batch, problem.seqs.max_seqlen_q, params.fwd.q_rows_total, varlen);
    const cudaError_t e = dq_accum.allocate(sizeof(float) * rows * problem.h_q * variant->head_dim);
    if (e != cudaSuccess) return device_error("dQ accumulator (cudaMallocAsync)", e);
    params.dq_accum = static_cast<float*>(dq_accum.get());
    params.dq_accum_head_dim = variant->head_dim;
  }
  const cudaError_t e = variant->launch(params, stream);
  if (e != cudaSuccess) return device_error((std::string("launch of ") + variant->name).c_str(), e);
  return Status::ok();
}

Status supports_kv_append(const KvAppendProblem& p) {
  if (p.q.dtype != FLASHPLUS_DTYPE_FLOAT16 && p.q.dtype != FLASHPLUS_DTYPE_BFLOAT16)
    return Status::error(FLASHPLUS_STATUS_UNSUPPORTED,
                         std::string("CUDA KV-cache append supports fp16 and bf16, got ") + dtype_tag(p.q.dtype));
  return Status::ok();
}

Status kv_append(const KvAppendProblem& p) {
  Status s = supports_kv_append(p);
  if (!s.is_ok()) return s;
  DeviceGuard guard(p.device.index);
  if (guard.status() != cudaSuccess) return device_error("cudaSetDevice", guard.status());
  kernels::KvAppendParams k;
  k.batch = p.batch;
  k.s_q = p.s_q;
  k.s_new = p.s_new;
  k.h_q = p.h_q;
  k.h_k = p.h_k;
  k.head_dim = p.head_dim;
  k.dtype = p.q.dtype;
  k.q = rows_addr(p.q);
  if (p.rotary_dim > 0 && p.q_rotated.data) k.q_rotated = rows_addr(p.q_rotated);
  if (p.k_new.data) {
    k.k_new = rows_addr(p.k_new);
    k.v_new = rows_addr(p.v_new);
  }
  k.k_cache = rows_addr(p.k_cache);
  k.v_cache = rows_addr(p.v_cache);
  k.cache_seqlens = p.seqs.seqused_k;
  k.cache_batch_idx = p.seqs.cache_batch_idx;
  k.block_table = p.seqs.block_table;
  k.block_table_batch_stride = p.seqs.block_table_batch_stride;
  k.page_size = p.seqs.page_size;
  k.cache_capacity = p.seqs.max_seqlen_k;
  k.cache_entries = p.seqs.kv_entries;
  k.index_errors = index_error_word();
  k.rotary_cos = p.rotary_cos;
  k.rotary_sin = p.rotary_sin;
  k.rotary_row_stride = p.rotary_row_stride;
  k.rotary_dim = p.rotary_dim;
  k.rotary_rows = p.rotary_seqlen;
  k.rotary_interleaved = p.rotary_interleaved;
  k.rotary_q_all_rows_at_cache_end = p.rotary_q_all_rows_at_cache_end;
  const cudaError_t e = kernels::launch_kv_append(k, static_cast<cudaStream_t>(p.stream));
  if (e != cudaSuccess) return device_error("launch of the KV-cache append kernel", e);
  return Status::ok();
}

Status supports_combine(const CombineProblem&) { return Status::ok(); }

// Up to kMaxSplits partials in one launch. More are folded in chunks through an fp32 workspace
// (b, s, h, d) + (b, h, s), which each later chunk reads as its partial 0; the last chunk writes
// the real output. Merging by LSE is associative, so the result is the same up to rounding.
Status combine(const CombineProblem& p) {
  DeviceGuard guard(p.device.index);
  if (guard.status() != cudaSuccess) return device_error("cudaSetDevice", guard.status());
  cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
  auto partial_of = [&](int i) {
    const RowsView& o = p.out_partials[i];
    const RowStatsView& l = p.lse_partials[i];
    kernels::CombinePartial part;
    part.out = o.data;
    part.dtype = o.dtype;
    part.out_batch_stride = o.batch_stride;
    part.out_row_stride = o.row_stride;
    part.out_head_stride = o.head_stride;
    part.lse = l.data;
    part.lse_batch_stride = l.batch_stride;
    part.lse_head_stride = l.head_stride;
    part.lse_row_stride = l.row_stride;
    return part;
  };
  kernels::CombineParams c;
  c.batch = p.batch;
  c.seqlen = p.seqlen;
  c.heads = p.heads;
  c.head_dim = p.head_dim;
  if (p.num_partials <= kMaxSplits) {
    c.num_partials = p.num_partials;
    for (int i = 0; i < p.num_partials; ++i) c.partials[i] = partial_of(i);
    set_combine_output(c, p.out, p.lse);
    const cudaError_t e = kernels::launch_combine(c, stream);
    return e == cudaSuccess ? Status::ok() : device_error("launch of the combine kernel", e);
  }

  const int64_t out_elems = static_cast<int64_t>(p.batch) * p.seqlen * p.heads * p.head_dim;
  const int64_t lse_elems = static_cast<int64_t>(p.batch) * p.heads * p.seqlen;
  ScopedWorkspace workspace(stream);
  cudaError_t e = workspace.allocate(sizeof(float) * (out_elems + lse_elems));
  if (e != cudaSuccess) return device_error("combine workspace (cudaMallocAsync)", e);
  float* acc_out = static_cast<float*>(workspace.get());
  float* acc_lse = acc_out + out_elems;
  const kernels::CombinePartial running = dense_partial(acc_out, acc_lse, p.seqlen, p.heads, p.head_dim);
  int next = 0;
  while (next < p.num_partials) {
    const bool first = next == 0;
    const int take = std::min(p.num_partials - next, first ? kMaxSplits : kMaxSplits - 1);
    c.num_partials = 0;
    if (!first) c.partials[c.num_partials++] = running;
    for (int i = 0; i < take; ++i) c.partials[c.num_partials++] = partial_of(next + i);
    next += take;
    if (next == p.num_partials) {
      set_combine_output(c, p.out, p.lse);
    } else {
      c.out = acc_out;
      c.out_dtype = FLASHPLUS_DTYPE_FLOAT32;
      c.out_batch_stride = running.out_batch_stride;
      c.out_row_stride = running.out_row_stride;
      c.out_head_stride = running.out_head_stride;
      c.lse = acc_lse;
      c.lse_batch_stride = running.lse_batch_stride;
      c.lse_head_stride = running.lse_head_stride;
      c.lse_row_stride = running.lse_row_stride;
    }
    e = kernels::launch_combine(c, stream);
    if (e != cudaSuccess) return device_error("launch of the combine kernel", e);
  }
  return Status::ok();
}

void* workspace_alloc(size_t bytes, int device_index, void* stream) {
  DeviceGuard guard(device_index);
  if (guard.status() != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  void* ptr = nullptr;
  if (cudaMallocAsync(&ptr, std::max<size_t>(bytes, 1), static_cast<cudaStream_t>(stream)) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return ptr;
}

void workspace_free(void* ptr, int device_index, void* stream) {
  if (!ptr) return;
  DeviceGuard guard(device_index);
  cudaFreeAsync(ptr, static_cast<cudaStream_t>(stream));
}

const char* build_info_json() { return kernels::kCudaBuildInfoJson; }

Status take_index_errors(int device_index, uint32_t& flags) {
  flags = 0;
  DeviceGuard guard(device_index);
  if (guard.status() != cudaSuccess) return device_error("cudaSetDevice", guard.status());
  cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) return device_error("cudaDeviceSynchronize", e);
  uint32_t recorded = 0;
  const uint32_t zero = 0;
  // The read and the clear are one exchange on the host side only after the synchronisation:
  // no kernel of this device is running, so nothing is lost between them.
  e = cudaMemcpyFromSymbol(&recorded, g_index_errors, sizeof(recorded));
  if (e == cudaSuccess) e = cudaMemcpyToSymbol(g_index_errors, &zero, sizeof(zero));
  if (e != cudaSuccess) return device_error("reading the index-error word", e);
  flags = recorded;
  return Status::ok();
}

}  // namespace cuda
}  // namespace flashplus
