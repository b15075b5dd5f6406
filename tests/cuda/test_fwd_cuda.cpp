// test_fwd_cuda.cpp — flashplus_fwd on the GPU against the host fp64 oracle.
//
// Each case builds logical per-sequence q / k / v, lays them out as the case asks (dense, varlen,
// paged with a shuffled block table, leftpad / seqused, padded head strides), poisons every output
// and every K/V row the kernel must not read (NaN), runs the C ABI on device memory and checks:
//   error(gpu vs fp64) <= 2 * error(same-precision host reference vs fp64) + atol   for out and LSE,
// rows that see no key give out = 0 and LSE = +inf, every output element is written and finite.
// Dropout cases take the keep-mask from the CPU backend's S_dmask (an independent implementation
// of the shared Philox layout) and require the GPU's S_dmask signs to match it exactly.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "cuda_test_support.h"
#include "reference_attention.h"

namespace fpcuda {
namespace {

constexpr uint16_t kPoisonBits = 0xFFFF;  // NaN in fp16 and bf16

struct FwdSpec {
  std::string name;
  flashplus_dtype dtype = FLASHPLUS_DTYPE_BFLOAT16;
  int batch = 2, s_q = 128, s_k = 128, h_q = 4, h_k = 4, d = 128;
  std::vector<int> lens_q, lens_k;  // non-empty: varlen (batch = lens_q.size())
  std::vector<int> seqused;         // absolute end of keys per sequence (includes leftpad)
  std::vector<int> leftpad;
  int page_size = 0;                // > 0: paged K/V
  bool causal = false;
  int window_left = -1, window_right = -1;
  float softcap = 0.f;
  int alibi = 0;                    // 0 none, 1 (h_q) slopes, 2 (b, h_q) slopes
  float dropout = 0.f;
  bool s_dmask = false;
  int num_splits = 1;
  int head_stride_pad = 0;          // extra elements after each head's d features (q, k, v, out)
  double input_scale = 1.0;         // q and k scale; logits grow with its square
  uint64_t seed = 1;
};

std::ostream& operator<<(std::ostream& os, const FwdSpec& s) { return os << s.name; }

bool varlen(const FwdSpec& s) { return !s.lens_q.empty(); }
int sequences(const FwdSpec& s) { return varlen(s) ? static_cast<int>(s.lens_q.size()) : s.batch; }

// Everything one run needs, on the host; the GPU and CPU runs copy from here.
struct HostCase {
  FwdSpec spec;
  AttentionInputs logical;
  std::vector<int> length_k;  // rows available per sequence (dense capacity or varlen length)
  int max_seqlen_q = 0, max_seqlen_k = 0;
  int head_stride = 0;
  // Physical tensors.
  std::vector<uint16_t> q, k, v;
  std::vector<int64_t> q_sizes, q_strides, kv_sizes, kv_strides;
  std::vector<int32_t> cu_q, cu_k, seqused, leftpad, block_table;
  std::vector<float> slopes;
  std::vector<int64_t> lse_sizes, out_count;
  int max_blocks = 0;
};

int64_t product(const std::vector<int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), int64_t{1}, std::multiplies<int64_t>());
}

HostCase build_case(const FwdSpec& spec) {
  HostCase c;
  c.spec = spec;
  Rng rng(spec.seed);
  const int n = sequences(spec);
  const int d = spec.d, hq = spec.h_q, hk = spec.h_k;
  c.head_stride = d + spec.head_stride_pad;
  AttentionInputs& in = c.logical;
  in.h_q = hq;
  in.h_k = hk;
  in.head_dim = d;
  in.scale = 1.0 / std::sqrt(static_cast<double>(d));
  in.softcap = spec.softcap;
  in.window_left = spec.window_left;
  in.window_right = spec.causal ? 0 : spec.window_right;
  in.dropout_p = spec.dropout;

  std::vector<int> end(n), lp(n, 0);
  c.length_k.resize(n);
  for (int b = 0; b < n; ++b) {
    in.s_q.push_back(varlen(spec) ? spec.lens_q[b] : spec.s_q);
    c.length_k[b] = varlen(spec) ? spec.lens_k[b] : spec.s_k;
  }
  if (spec.page_size > 0) {
    int longest = *std::max_element(c.length_k.begin(), c.length_k.end());
    c.max_blocks = std::max(1, (longest + spec.page_size - 1) / spec.page_size);
    if (!varlen(spec)) std::fill(c.length_k.begin(), c.length_k.end(), c.max_blocks * spec.page_size);
  }
  for (int b = 0; b < n; ++b) {
    end[b] = spec.seqused.empty() ? (varlen(spec) ? c.length_k[b] : std::min(c.length_k[b], spec.s_k)) : spec.seqused[b];
    if (!spec.leftpad.empty()) lp[b] = spec.leftpad[b];
    in.s_k.push_back(end[b] - lp[b]);
  }
  const bool need_seqused = !spec.seqused.empty() || (spec.page_size > 0 && !varlen(spec));

  // Logical data, rounded to the element type.
  auto draw = [&](int rows, int heads, double scale, std::vector<double>& values) {
    values.resize(static_cast<size_t>(rows) * heads * d);
    for (double& x : values) x = round_to(rng.normal() * scale, spec.dtype);
  };
  for (int b = 0; b < n; ++b) {
    in.q.emplace_back();
    in.k.emplace_back();
    in.v.emplace_back();
    draw(in.s_q[b], hq, spec.input_scale, in.q.back());
    draw(in.s_k[b], hk, spec.input_scale, in.k.back());
    draw(in.s_k[b], hk, 1.0, in.v.back());
  }
  if (spec.alibi) {
    const int rows = spec.alibi == 2 ? n : 1;
    for (int i = 0; i < rows * hq; ++i) c.slopes.push_back(static_cast<float>(rng.uniform(0.05, 1.0)));
    for (int b = 0; b < n; ++b)
      for (int h = 0; h < hq; ++h) in.slopes.push_back(c.slopes[(spec.alibi == 2 ? b * hq : 0) + h]);
  }

  // Queries.
  c.max_seqlen_q = *std::max_element(in.s_q.begin(), in.s_q.end());
  c.max_seqlen_k = *std::max_element(c.length_k.begin(), c.length_k.end());
  std::vector<int64_t> q_row0(n);
  if (varlen(spec)) {
    c.cu_q.push_back(0);
    for (int b = 0; b < n; ++b) c.cu_q.push_back(c.cu_q.back() + in.s_q[b]);
    c.q_sizes = {c.cu_q.back(), hq, d};
    c.q_strides = {static_cast<int64_t>(hq) * c.head_stride, c.head_stride, 1};
    for (int b = 0; b < n; ++b) q_row0[b] = c.cu_q[b];
  } else {
    c.q_sizes = {n, spec.s_q, hq, d};
    c.q_strides = {static_cast<int64_t>(spec.s_q) * hq * c.head_stride, static_cast<int64_t>(hq) * c.head_stride, c.head_stride, 1};
    for (int b = 0; b < n; ++b) q_row0[b] = static_cast<int64_t>(b) * spec.s_q;
  }
  const int64_t q_rows = varlen(spec) ? c.cu_q.back() : static_cast<int64_t>(n) * spec.s_q;
  c.q.assign(static_cast<size_t>(q_rows) * hq * c.head_stride, kPoisonBits);
  for (int b = 0; b < n; ++b)
    for (int i = 0; i < in.s_q[b]; ++i)
      for (int h = 0; h < hq; ++h)
        for (int f = 0; f < d; ++f)
          c.q[((q_row0[b] + i) * hq + h) * c.head_stride + f] =
              to_bits(static_cast<float>(in.q[b][(static_cast<size_t>(i) * hq + h) * d + f]), spec.dtype);

  // Keys and values: every row the kernel must not read stays NaN.
  std::vector<int64_t> kv_offset_of_row;  // filled per sequence below
  const int64_t row_elems = static_cast<int64_t>(hk) * c.head_stride;
  std::vector<std::vector<int64_t>> row_offset(n);  // physical element offset of absolute key row r
  if (spec.page_size > 0) {
    const int pages = n * c.max_blocks;
    std::vector<int32_t> order(pages);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng.engine());
    c.block_table = order;
    c.kv_sizes = {pages, spec.page_size, hk, d};
    c.kv_strides = {spec.page_size * row_elems, row_elems, c.head_stride, 1};
    for (int b = 0; b < n; ++b)
      for (int r = 0; r < c.length_k[b]; ++r)
        row_offset[b].push_back(c.block_table[b * c.max_blocks + r / spec.page_size] * c.kv_strides[0] +
                                (r % spec.page_size) * row_elems);
    if (varlen(spec)) {
      c.cu_k.push_back(0);
      for (int b = 0; b < n; ++b) c.cu_k.push_back(c.cu_k.back() + c.length_k[b]);
    }
  } else if (varlen(spec)) {
    c.cu_k.push_back(0);
    for (int b = 0; b < n; ++b) c.cu_k.push_back(c.cu_k.back() + c.length_k[b]);
    c.kv_sizes = {std::max(c.cu_k.back(), 0), hk, d};
    c.kv_strides = {row_elems, c.head_stride, 1};
    for (int b = 0; b < n; ++b)
      for (int r = 0; r < c.length_k[b]; ++r) row_offset[b].push_back((c.cu_k[b] + r) * row_elems);
  } else {
    c.kv_sizes = {n, spec.s_k, hk, d};
    c.kv_strides = {spec.s_k * row_elems, row_elems, c.head_stride, 1};
    for (int b = 0; b < n; ++b)
      for (int r = 0; r < c.length_k[b]; ++r) row_offset[b].push_back(b * c.kv_strides[0] + r * row_elems);
  }
  const int64_t kv_elems = std::max<int64_t>(1, c.kv_sizes[0] * c.kv_strides[0]);
  c.k.assign(kv_elems, kPoisonBits);
  c.v.assign(kv_elems, kPoisonBits);
  for (int b = 0; b < n; ++b)
    for (int j = 0; j < in.s_k[b]; ++j)
      for (int h = 0; h < hk; ++h)
        for (int f = 0; f < d; ++f) {
          const int64_t at = row_offset[b][lp[b] + j] + h * c.head_stride + f;
          const size_t logical = (static_cast<size_t>(j) * hk + h) * d + f;
          c.k[at] = to_bits(static_cast<float>(in.k[b][logical]), spec.dtype);
          c.v[at] = to_bits(static_cast<float>(in.v[b][logical]), spec.dtype);
        }
  if (need_seqused) c.seqused.assign(end.begin(), end.end());
  if (!spec.leftpad.empty()) c.leftpad.assign(lp.begin(), lp.end());
  c.lse_sizes = varlen(spec) ? std::vector<int64_t>{hq, c.cu_q.back()} : std::vector<int64_t>{n, hq, spec.s_q};
  return c;
}

// Pointers of one run's tensors (device or host).
struct RunBuffers {
  flashplus_device_type device;
  void *q, *k, *v, *out, *lse, *dmask, *cu_q, *cu_k, *seqused, *leftpad, *block_table, *slopes;
};

flashplus_fwd_args make_args(const HostCase& c, const RunBuffers& b) {
  const FwdSpec& s = c.spec;
  const int n = sequences(s);
  flashplus_fwd_args a;
  flashplus_fwd_args_init(&a);
  a.q = tensor(b.q, s.dtype, b.device, c.q_sizes, c.q_strides);
  a.k = tensor(b.k, s.dtype, b.device, c.kv_sizes, c.kv_strides);
  a.v = tensor(b.v, s.dtype, b.device, c.kv_sizes, c.kv_strides);
  a.out = tensor(b.out, s.dtype, b.device, c.q_sizes, c.q_strides);
  a.softmax_lse = tensor(b.lse, FLASHPLUS_DTYPE_FLOAT32, b.device, c.lse_sizes);
  if (s.s_dmask)
    a.s_dmask = tensor(b.dmask, FLASHPLUS_DTYPE_FLOAT32, b.device, {n, s.h_q, c.max_seqlen_q, c.max_seqlen_k});
  auto index = [&](void* data, int64_t count) { return tensor(data, FLASHPLUS_DTYPE_INT32, b.device, {count}); };
  if (!c.cu_q.empty()) {
    a.cu_seqlens_q = index(b.cu_q, n + 1);
    a.cu_seqlens_k = index(b.cu_k, n + 1);
    a.max_seqlen_q = c.max_seqlen_q;
    a.max_seqlen_k = c.max_seqlen_k;
  }
  if (!c.seqused.empty()) a.seqused_k = index(b.seqused, n);
  if (!c.leftpad.empty()) a.leftpad_k = index(b.leftpad, n);
  if (!c.block_table.empty())
    a.block_table = tensor(b.block_table, FLASHPLUS_DTYPE_INT32, b.device, {n, c.max_blocks});
  if (s.alibi == 1) a.alibi_slopes = tensor(b.slopes, FLASHPLUS_DTYPE_FLOAT32, b.device, {s.h_q});
  if (s.alibi == 2) a.alibi_slopes = tensor(b.slopes, FLASHPLUS_DTYPE_FLOAT32, b.device, {n, s.h_q});
  a.softmax_scale = static_cast<float>(c.logical.scale);
  a.softcap = s.softcap;
  a.is_causal = s.causal ? 1 : 0;
  a.window_left = s.window_left;
  a.window_right = s.window_right;
  a.dropout_p = s.dropout;
  a.philox_seed = 0x1234567890abcdefULL + s.seed;
  a.philox_offset = 77;
  a.num_splits = s.num_splits;
  return a;
}

struct RunResult {
  flashplus_status status = FLASHPLUS_STATUS_OK;
  std::string error;
  std::vector<uint16_t> out;
  std::vector<float> lse, dmask;
};

size_t dmask_count(const HostCase& c) {
  return c.spec.s_dmask ? static_cast<size_t>(sequences(c.spec)) * c.spec.h_q * c.max_seqlen_q * c.max_seqlen_k : 0;
}

RunResult run_gpu(const HostCase& c) {
  DeviceBuffer q = DeviceBuffer::from(c.q), k = DeviceBuffer::from(c.k), v = DeviceBuffer::from(c.v);
  DeviceBuffer out(c.q.size() * 2), lse(product(c.lse_sizes) * 4 + 4), dmask(dmask_count(c) * 4 + 4);
  out.fill_bytes(0xFF);
  lse.fill_bytes(0xFF);
  dmask.fill_bytes(0xFF);
  DeviceBuffer cu_q = DeviceBuffer::from(c.cu_q), cu_k = DeviceBuffer::from(c.cu_k);
  DeviceBuffer seqused = DeviceBuffer::from(c.seqused), leftpad = DeviceBuffer::from(c.leftpad);
  DeviceBuffer table = DeviceBuffer::from(c.block_table), slopes = DeviceBuffer::from(c.slopes);
  const RunBuffers b{FLASHPLUS_DEVICE_CUDA, q.data(), k.data(), v.data(), out.data(), lse.data(), dmask.data(),
                     cu_q.data(), cu_k.data(), seqused.data(), leftpad.data(), table.data(), slopes.data()};
  const flashplus_fwd_args args = make_args(c, b);
  RunResult r;
  r.status = flashplus_fwd(&args);
  r.error = flashplus_last_error();
  device_synchronize();
  r.out = out.to_host<uint16_t>(c.q.size());
  r.lse = lse.to_host<float>(product(c.lse_sizes));
  r.dmask = dmask.to_host<float>(dmask_count(c));
  return r;
}

RunResult run_cpu(const HostCase& c) {
  HostCase h = c;  // the CPU reads host vectors in place
  RunResult r;
  r.out.assign(c.q.size(), kPoisonBits);
  r.lse.assign(product(c.lse_sizes), std::numeric_limits<float>::quiet_NaN());
  r.dmask.assign(dmask_count(c), std::numeric_limits<float>::quiet_NaN());
  const RunBuffers b{FLASHPLUS_DEVICE_CPU, h.q.data(), h.k.data(), h.v.data(), r.out.data(), r.lse.data(),
                     r.dmask.data(), h.cu_q.data(), h.cu_k.data(), h.seqused.data(), h.leftpad.data(),
                     h.block_table.data(), h.slopes.data()};
  const flashplus_fwd_args args = make_args(c, b);
  r.status = flashplus_fwd(&args);
  r.error = flashplus_last_error();
  return r;
}

// Physical index helpers for outputs shaped like q / LSE.
int64_t out_index(const HostCase& c, int b, int i, int h, int f) {
  const int64_t row = c.cu_q.empty() ? static_cast<int64_t>(b) * c.spec.s_q + i : c.cu_q[b] + i;
  return (row * c.spec.h_q + h) * c.head_stride + f;
}

int64_t lse_index(const HostCase& c, int b, int h, int i) {
  if (c.cu_q.empty()) return (static_cast<int64_t>(b) * c.spec.h_q + h) * c.spec.s_q + i;
  return static_cast<int64_t>(h) * c.cu_q.back() + c.cu_q[b] + i;
}

int64_t dmask_index(const HostCase& c, int b, int h, int i, int j) {
  return ((static_cast<int64_t>(b) * c.spec.h_q + h) * c.max_seqlen_q + i) * c.max_seqlen_k + j;
}

std::string at(int b, int h, int i, int f = -1) {
  std::ostringstream os;
  os << "(seq " << b << ", head " << h << ", row " << i;
  if (f >= 0) os << ", feature " << f;
  os << ")";
  return os.str();
}

struct ErrorStats {
  double max_error = 0;
  int b = -1, h = -1, i = -1, f = -1;
  void add(double error, int b_, int h_, int i_, int f_ = -1) {
    if (!(error <= max_error)) {  // NaN counts as the largest error
      max_error = std::isnan(error) ? std::numeric_limits<double>::infinity() : error;
      b = b_, h = h_, i = i_, f = f_;
    }
  }
  std::string where() const { return at(b, h, i, f); }
};

// FLASHPLUS_CUDA_TESTS_ON_CPU=1 runs the "GPU" side of every forward case on the CPU backend
// instead: a check of this harness and its oracle on a machine without a GPU.
bool harness_self_check() {
  const char* flag = std::getenv("FLASHPLUS_CUDA_TESTS_ON_CPU");
  return flag && std::string(flag) == "1";
}

// The oracle's dropout keep-mask of case c from the CPU backend's S_dmask signs (a negative entry
// is a dropped one); `masked` is the case the CPU run used (c itself, or c with S_dmask requested).
void set_keep_mask_from_dmask(HostCase& c, const HostCase& masked, const RunResult& cpu) {
  const FwdSpec& spec = c.spec;
  c.logical.keep.resize(sequences(spec));
  for (int b = 0; b < sequences(spec); ++b) {
    auto& keep = c.logical.keep[b];
    keep.assign(static_cast<size_t>(spec.h_q) * c.logical.s_q[b] * c.logical.s_k[b], 1);
    for (int h = 0; h < spec.h_q; ++h)
      for (int i = 0; i < c.logical.s_q[b]; ++i)
        for (int j = 0; j < c.logical.s_k[b]; ++j)
          keep[(static_cast<size_t>(h) * c.logical.s_q[b] + i) * c.logical.s_k[b] + j] =
              std::signbit(cpu.dmask[dmask_index(masked, b, h, i, j)]) ? 0 : 1;
  }
}

// Whether the sm90 (wgmma) forward serves case c (cuda_backend.cu: sm90_variant), judged from the
// case's own description: no dropout, dense or varlen K/V with 16-byte rows, more than 16 rows per
// query tile (s_q, times the GQA group when short queries are packed).
bool sm90_should_serve(const HostCase& c) {
  const FwdSpec& s = c.spec;
  const bool packed = s.h_q > s.h_k && s.alibi == 0 && s.dropout == 0.f && c.max_seqlen_q <= 64;
  const int tile_rows = c.max_seqlen_q * (packed ? s.h_q / s.h_k : 1);
  return s.dropout == 0.f && s.page_size == 0 && s.d % 8 == 0 && (s.d + s.head_stride_pad) % 8 == 0 &&
         tile_rows > 16;
}

// Whether the sm90 (wgmma) backward serves case c in its default (fused) mode
// (cuda_backend.cu: sm90_bwd_variant): no dropout, K/V with 16-byte rows.
bool sm90_bwd_should_serve(const HostCase& c) {
  const FwdSpec& s = c.spec;
  return s.dropout == 0.f && s.d % 8 == 0 && (s.d + s.head_stride_pad) % 8 == 0;
}

// The checks of one run's outputs against the oracle; `path` labels the messages.
void check_result(const HostCase& c, const RunResult& gpu, const AttentionOutputs& exact,
                  const AttentionOutputs& naive, const RunResult& cpu, const std::string& path) {
  const FwdSpec& spec = c.spec;
  const bool dropout = spec.dropout > 0.f;
  SCOPED_TRACE("FLASHPLUS_KERNEL_PATH=" + path);
  ErrorStats out_gpu, out_naive, lse_gpu, lse_naive;
  double lse_scale = 1.0;
  int64_t nonfinite = 0, empty_row_errors = 0;
  const int d = spec.d;
  for (int b = 0; b < sequences(spec); ++b) {
    for (int h = 0; h < spec.h_q; ++h) {
      for (int i = 0; i < c.logical.s_q[b]; ++i) {
        const double lse_ref = exact.lse[b][static_cast<size_t>(h) * c.logical.s_q[b] + i];
        const double lse_got = gpu.lse[lse_index(c, b, h, i)];
        const bool empty_row = std::isinf(lse_ref);
        if (empty_row) {
          if (!(std::isinf(lse_got) && lse_got > 0)) ++empty_row_errors;
        } else {
          lse_scale = std::max(lse_scale, std::fabs(lse_ref));
          lse_gpu.add(std::fabs(lse_got - lse_ref), b, h, i);
          lse_naive.add(std::fabs(naive.lse[b][static_cast<size_t>(h) * c.logical.s_q[b] + i] - lse_ref), b, h, i);
        }
        for (int f = 0; f < d; ++f) {
          const double ref = exact.out[b][(static_cast<size_t>(i) * spec.h_q + h) * d + f];
          const double got = from_bits(gpu.out[out_index(c, b, i, h, f)], spec.dtype);
          if (!std::isfinite(got)) ++nonfinite;
          if (empty_row && got != 0.0) ++empty_row_errors;
          out_gpu.add(std::fabs(got - ref), b, h, i, f);
          out_naive.add(std::fabs(naive.out[b][(static_cast<size_t>(i) * spec.h_q + h) * d + f] - ref), b, h, i, f);
        }
      }
    }
  }
  // Padding between heads must be untouched.
  int64_t padding_written = 0;
  if (spec.head_stride_pad > 0)
    for (size_t e = 0; e < gpu.out.size(); ++e)
      if (static_cast<int>(e % c.head_stride) >= d && gpu.out[e] != kPoisonBits) ++padding_written;

  std::printf("[ errors   ] %s (%s): out gpu %.3g naive %.3g | lse gpu %.3g naive %.3g\n", spec.name.c_str(),
              path.c_str(), out_gpu.max_error, out_naive.max_error, lse_gpu.max_error, lse_naive.max_error);
  const double out_atol = spec.dtype == FLASHPLUS_DTYPE_BFLOAT16 ? 2e-3 : 5e-4;
  const double lse_atol = 1e-3 + 2e-6 * lse_scale;
  EXPECT_EQ(nonfinite, 0) << "out has NaN/inf (unwritten or overflow)";
  EXPECT_EQ(empty_row_errors, 0) << "rows that see no key must give out = 0 and LSE = +inf";
  EXPECT_EQ(padding_written, 0) << "out elements past head_dim were written";
  EXPECT_LE(out_gpu.max_error, 2 * out_naive.max_error + out_atol)
      << "out: gpu error " << out_gpu.max_error << " at " << out_gpu.where() << ", same-precision reference error "
      << out_naive.max_error;
  EXPECT_LE(lse_gpu.max_error, 2 * lse_naive.max_error + lse_atol)
      << "lse: gpu error " << lse_gpu.max_error << " at " << lse_gpu.where() << ", same-precision reference error "
      << lse_naive.max_error;

  if (spec.s_dmask) {
    int64_t sign_mismatch = 0, outside_nonzero = 0, value_errors = 0;
    std::string first_bad;
    for (int b = 0; b < sequences(spec); ++b)
      for (int h = 0; h < spec.h_q; ++h)
        for (int i = 0; i < c.max_seqlen_q; ++i)
          for (int j = 0; j < c.max_seqlen_k; ++j) {
            const float got = gpu.dmask[dmask_index(c, b, h, i, j)];
            const bool inside = i < c.logical.s_q[b] && j < c.logical.s_k[b];
            if (!inside) {
              if (got != 0.f) ++outside_nonzero;
              continue;
            }
            const double p = exact.probs[b][(static_cast<size_t>(h) * c.logical.s_q[b] + i) * c.logical.s_k[b] + j];
            if (std::fabs(std::fabs(got) - p) > 2e-3 + 1e-2 * p) {
              if (value_errors++ == 0) first_bad = at(b, h, i) + " key " + std::to_string(j);
            }
            if (dropout && std::signbit(got) != std::signbit(cpu.dmask[dmask_index(c, b, h, i, j)])) ++sign_mismatch;
            if (!dropout && got < 0.f) ++sign_mismatch;
          }
    EXPECT_EQ(outside_nonzero, 0) << "s_dmask entries outside (s_q, s_k) must be 0";
    EXPECT_EQ(value_errors, 0) << "s_dmask |P| differs from the fp64 P, first at " << first_bad;
    EXPECT_EQ(sign_mismatch, 0) << "s_dmask dropout signs differ from the CPU backend's";
  }
}

void check_case(const FwdSpec& spec) {
  const bool self_check = harness_self_check();
  if (!self_check) FPCUDA_SKIP_WITHOUT_GPU();
  HostCase c = build_case(spec);
  const bool dropout = spec.dropout > 0.f;
  if (!self_check && !cuda_variant_compiled(spec.dtype, spec.d, dropout, "fwd")) {
    const RunResult r = run_gpu(c);
    EXPECT_EQ(r.status, FLASHPLUS_STATUS_UNSUPPORTED) << r.error;
    EXPECT_NE(r.error.find("no compiled variant"), std::string::npos) << r.error;
    GTEST_SKIP() << "variant not compiled in this preset (UNSUPPORTED checked): " << r.error;
  }

  RunResult cpu;
  if (dropout) {
    // The keep-mask comes from the CPU backend's S_dmask signs.
    cpu = run_cpu(c);
    ASSERT_EQ(cpu.status, FLASHPLUS_STATUS_OK) << "CPU backend: " << cpu.error;
    set_keep_mask_from_dmask(c, c, cpu);
  }

  const AttentionOutputs exact = reference_fp64(c.logical);
  const AttentionOutputs naive = reference_same_precision(c.logical, spec.dtype);
  if (self_check) {
    const RunResult gpu = run_cpu(c);
    ASSERT_EQ(gpu.status, FLASHPLUS_STATUS_OK) << gpu.error;
    check_result(c, gpu, exact, naive, cpu, "cpu");
    return;
  }
  for (const std::string& path : kernel_paths("fwd", spec.dtype, spec.d)) {
    const ScopedKernelPath scoped(path);
    const RunResult gpu = run_gpu(c);
    if (path == "sm90" && gpu.status == FLASHPLUS_STATUS_UNSUPPORTED) {
      // The sm90 kernel does not serve every call; the ones it must serve may not be refused.
      EXPECT_FALSE(sm90_should_serve(c)) << "the sm90 forward refused a call it serves: " << gpu.error;
      std::printf("[ path     ] %s: sm90 path not taken (%s)\n", spec.name.c_str(), gpu.error.c_str());
      continue;
    }
    ASSERT_EQ(gpu.status, FLASHPLUS_STATUS_OK) << "FLASHPLUS_KERNEL_PATH=" << path << ": " << gpu.error;
    check_result(c, gpu, exact, naive, cpu, path);
  }
}

std::vector<FwdSpec> fwd_specs() {
  std::vector<FwdSpec> specs;
  auto add = [&](FwdSpec s) { specs.push_back(s); };
  // Small cases (also the compute-sanitizer subset: names start with "Small").
  add({.name = "SmallDense"});
  { FwdSpec s{.name = "SmallCausalGqa", .batch = 1, .s_q = 77, .s_k = 130, .h_q = 6, .h_k = 2, .causal = true}; add(s); }
  { FwdSpec s{.name = "SmallVarlenEmpty", .h_q = 2, .h_k = 1, .lens_q = {0, 17, 113, 1, 0}, .lens_k = {5, 0, 200, 64, 0}}; add(s); }
  { FwdSpec s{.name = "SmallPaged16", .batch = 3, .s_q = 33, .s_k = 150, .h_q = 4, .h_k = 2, .seqused = {150, 7, 99}, .page_size = 16, .causal = true}; add(s); }
  { FwdSpec s{.name = "SmallSplit3", .batch = 1, .s_q = 5, .s_k = 700, .h_q = 2, .h_k = 1, .num_splits = 3}; add(s); }
  { FwdSpec s{.name = "SmallDropoutDmask", .batch = 2, .s_q = 50, .s_k = 70, .h_q = 2, .h_k = 2, .dropout = 0.17f, .s_dmask = true}; add(s); }
  { FwdSpec s{.name = "SmallUnalignedD33", .batch = 2, .s_q = 40, .s_k = 41, .h_q = 3, .h_k = 3, .d = 33, .causal = true}; add(s); }
  // Odd sizes.
  for (auto [sq, sk] : std::vector<std::pair<int, int>>{{1, 1}, {17, 17}, {113, 113}, {1, 1023}, {113, 1023}, {1023, 113}, {1023, 1023}})
    for (bool causal : {false, true}) {
      FwdSpec s{.batch = 2, .s_q = sq, .s_k = sk, .h_q = 2, .h_k = 1, .causal = causal};
      s.name = "Seq" + std::to_string(sq) + "x" + std::to_string(sk) + (causal ? "Causal" : "");
      s.seed = sq * 7 + sk;
      add(s);
    }
  { FwdSpec s{.name = "Seq4097Causal", .batch = 1, .s_q = 4097, .s_k = 4097, .h_q = 1, .h_k = 1, .d = 64, .causal = true}; add(s); }
  { FwdSpec s{.name = "Seq17x4097", .batch = 1, .s_q = 17, .s_k = 4097, .h_q = 2, .h_k = 2}; add(s); }
  // Head dims served by padding, and head dims of other compiled variants.
  for (int d : {40, 64, 72, 96, 128, 192, 200, 256}) {
    FwdSpec s{.batch = 2, .s_q = 65, .s_k = 97, .h_q = 2, .h_k = 2, .d = d, .causal = d % 64 == 8};
    s.name = "HeadDim" + std::to_string(d);
    add(s);
  }
  { FwdSpec s{.name = "Fp16Dense", .dtype = FLASHPLUS_DTYPE_FLOAT16, .s_q = 100, .s_k = 200}; add(s); }
  // GQA / MQA.
  { FwdSpec s{.name = "Mqa", .batch = 2, .s_q = 64, .s_k = 300, .h_q = 8, .h_k = 1}; add(s); }
  // Packed GQA (s_q <= 64, no ALiBi / dropout): the tile rows run over (query, head in group); two
  // tiles per group here, with the causal, window and softcap rules applied per packed row.
  { FwdSpec s{.name = "PackedGqaCausalWindowSoftcap", .batch = 2, .s_q = 50, .s_k = 300, .h_q = 8, .h_k = 2, .causal = true, .window_left = 40, .softcap = 25.f, .input_scale = 2.0}; add(s); }
  { FwdSpec s{.name = "PackedGqaVarlenSplit", .h_q = 6, .h_k = 2, .lens_q = {1, 0, 64, 7}, .lens_k = {900, 5, 640, 70}, .causal = true, .num_splits = 3}; add(s); }
  // Masks and logit modifiers.
  { FwdSpec s{.name = "CausalQLongerThanK", .batch = 2, .s_q = 300, .s_k = 100, .causal = true}; add(s); }
  { FwdSpec s{.name = "WindowLeft32Causal", .s_q = 257, .s_k = 257, .causal = true, .window_left = 32}; add(s); }
  { FwdSpec s{.name = "Window16x48", .s_q = 200, .s_k = 333, .window_left = 16, .window_right = 48}; add(s); }
  { FwdSpec s{.name = "WindowRight5", .s_q = 129, .s_k = 64, .window_right = 5}; add(s); }
  { FwdSpec s{.name = "AlibiPerHeadCausal", .s_q = 150, .s_k = 150, .causal = true, .alibi = 1}; add(s); }
  { FwdSpec s{.name = "AlibiPerBatchHead", .s_q = 90, .s_k = 180, .alibi = 2}; add(s); }
  { FwdSpec s{.name = "Softcap30", .s_q = 128, .s_k = 256, .softcap = 30.f, .input_scale = 3.0}; add(s); }
  { FwdSpec s{.name = "SoftcapAlibiWindow", .s_q = 100, .s_k = 220, .window_left = 40, .window_right = 10, .softcap = 20.f, .alibi = 2}; add(s); }
  // Huge logits (~1e3): no inf / NaN anywhere.
  { FwdSpec s{.name = "Logits1e3", .s_q = 128, .s_k = 200, .input_scale = 30.0}; add(s); }
  { FwdSpec s{.name = "Logits1e3Causal", .s_q = 200, .s_k = 128, .causal = true, .input_scale = 30.0}; add(s); }
  // Dropout, exact keep-mask against the CPU backend.
  { FwdSpec s{.name = "DropoutCausalVarlen", .h_q = 2, .h_k = 1, .lens_q = {31, 0, 130}, .lens_k = {64, 9, 130}, .causal = true, .dropout = 0.3f, .s_dmask = true}; add(s); }
  { FwdSpec s{.name = "DmaskNoDropoutAlibi", .batch = 2, .s_q = 70, .s_k = 90, .window_left = 20, .alibi = 1, .s_dmask = true}; add(s); }
  // Varlen, seqused, leftpad.
  { FwdSpec s{.name = "VarlenCausal", .h_q = 4, .h_k = 2, .lens_q = {1, 128, 300, 17}, .lens_k = {1, 256, 300, 500}, .causal = true}; add(s); }
  { FwdSpec s{.name = "LeftpadSeqused", .batch = 3, .s_q = 20, .s_k = 200, .seqused = {200, 150, 64}, .leftpad = {0, 37, 63}, .causal = true}; add(s); }
  { FwdSpec s{.name = "VarlenSequsedLeftpad", .lens_q = {10, 20}, .lens_k = {100, 200}, .seqused = {90, 200}, .leftpad = {5, 130}}; add(s); }
  // Paged K/V, any page size.
  for (int ps : {1, 16, 256}) {
    FwdSpec s{.batch = 3, .s_q = 19, .s_k = 300, .h_q = 4, .h_k = 2, .seqused = {300, 1, 129}, .page_size = ps};
    s.name = "Paged" + std::to_string(ps);
    add(s);
  }
  { FwdSpec s{.name = "PagedVarlen7", .h_q = 2, .h_k = 2, .lens_q = {3, 40}, .lens_k = {50, 99}, .page_size = 7, .causal = true}; add(s); }
  { FwdSpec s{.name = "PagedLeftpad16", .batch = 2, .s_q = 8, .s_k = 100, .seqused = {100, 80}, .leftpad = {20, 3}, .page_size = 16}; add(s); }
  // Split-KV: explicit, heuristic (decode shape), clamped.
  { FwdSpec s{.name = "SplitHeuristicDecode", .batch = 1, .s_q = 1, .s_k = 3000, .h_q = 4, .h_k = 1, .num_splits = 0}; add(s); }
  { FwdSpec s{.name = "Split64Clamped", .batch = 2, .s_q = 70, .s_k = 500, .causal = true, .num_splits = 64}; add(s); }
  { FwdSpec s{.name = "SplitVarlenPaged", .h_q = 2, .h_k = 1, .lens_q = {1, 5, 0}, .lens_k = {700, 65, 3}, .page_size = 32, .num_splits = 4}; add(s); }
  // Other compiled variants (full preset): fp16, the 8-warp tiles, dropout there.
  { FwdSpec s{.name = "Fp16DropoutHd256", .dtype = FLASHPLUS_DTYPE_FLOAT16, .batch = 2, .s_q = 70, .s_k = 130, .h_q = 2, .h_k = 1, .d = 256, .causal = true, .dropout = 0.2f, .s_dmask = true}; add(s); }
  { FwdSpec s{.name = "Hd192PagedSplit", .batch = 2, .s_q = 9, .s_k = 400, .h_q = 4, .h_k = 1, .d = 192, .seqused = {400, 77}, .page_size = 16, .causal = true, .num_splits = 3}; add(s); }
  { FwdSpec s{.name = "Fp16VarlenHd64Window", .dtype = FLASHPLUS_DTYPE_FLOAT16, .h_q = 4, .h_k = 2, .d = 64, .lens_q = {100, 1, 257}, .lens_k = {300, 20, 257}, .window_left = 30, .window_right = 7, .alibi = 1}; add(s); }
  // The sm90 (wgmma) variants of the full preset: fp16 with the 64-key tile of d = 256.
  { FwdSpec s{.name = "Fp16Hd256VarlenCausalGqa", .dtype = FLASHPLUS_DTYPE_FLOAT16, .h_q = 4, .h_k = 2, .d = 256, .lens_q = {200, 0, 65}, .lens_k = {200, 7, 300}, .causal = true}; add(s); }
  { FwdSpec s{.name = "Fp16D80Softcap", .dtype = FLASHPLUS_DTYPE_FLOAT16, .s_q = 111, .s_k = 222, .d = 80, .softcap = 15.f, .input_scale = 2.0}; add(s); }
  // Strides: padded heads, aligned (pad 8) and not (pad 3).
  { FwdSpec s{.name = "HeadStridePad8", .s_q = 70, .s_k = 90, .head_stride_pad = 8}; add(s); }
  { FwdSpec s{.name = "HeadStridePad3Causal", .s_q = 70, .s_k = 90, .causal = true, .head_stride_pad = 3}; add(s); }
  return specs;
}

class CudaFwd : public ::testing::TestWithParam<FwdSpec> {};

TEST_P(CudaFwd, MatchesFp64Oracle) { check_case(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Cases, CudaFwd, ::testing::ValuesIn(fwd_specs()),
                         [](const ::testing::TestParamInfo<FwdSpec>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Backward: GPU forward (out, LSE as a user would have them), then GPU backward, against the fp64
// gradients of the oracle; dropout keep-mask from the CPU backend as in the forward cases.
// ---------------------------------------------------------------------------------------------

struct BwdRun {
  flashplus_status status = FLASHPLUS_STATUS_OK;
  std::string error;
  std::vector<uint16_t> dq, dk, dv;
  std::vector<float> softmax_d;
};

// Backward arguments that reuse a finished forward's q, k, v, out and LSE; the rest is the caller's.
flashplus_bwd_args bwd_args_of(const flashplus_fwd_args& f) {
  flashplus_bwd_args a;
  flashplus_bwd_args_init(&a);
  a.q = f.q;
  a.k = f.k;
  a.v = f.v;
  a.out = f.out;
  a.softmax_lse = f.softmax_lse;
  return a;
}

// Forward then backward, on the GPU or (on_cpu, the harness self-check) on the CPU backend. The
// backward runs with FLASHPLUS_KERNEL_PATH=bwd_path ("auto": unset), the forward on the default.
BwdRun run_backward(const HostCase& c, const std::vector<uint16_t>& dout_host, bool deterministic, bool on_cpu,
                    const std::string& bwd_path = "auto") {
  const FwdSpec& s = c.spec;
  const flashplus_device_type device = on_cpu ? FLASHPLUS_DEVICE_CPU : FLASHPLUS_DEVICE_CUDA;
  const size_t stats = product(c.lse_sizes);
  // Host copies (CPU run) or device buffers (GPU run) of every tensor.
  HostCase h = c;
  std::vector<uint16_t> dout_h = dout_host, out_h(c.q.size(), kPoisonBits), dq_h(c.q.size(), kPoisonBits);
  std::vector<uint16_t> dk_h(c.k.size(), kPoisonBits), dv_h(c.v.size(), kPoisonBits);
  std::vector<float> lse_h(stats + 1, NAN), d_h(stats + 1, NAN);
  std::vector<DeviceBuffer> keep;
  auto place = [&](auto& host) -> void* {
    if (on_cpu) return host.data();
    keep.push_back(DeviceBuffer::from(host));
    return keep.back().data();
  };
  void *q = place(h.q), *k = place(h.k), *v = place(h.v), *out = place(out_h), *lse = place(lse_h);
  void *dout = place(dout_h), *dq = place(dq_h), *dk = place(dk_h), *dv = place(dv_h), *softmax_d = place(d_h);
  void *cu_q = place(h.cu_q), *cu_k = place(h.cu_k), *slopes = place(h.slopes);
  const RunBuffers b{device, q, k, v, out, lse, nullptr, cu_q, cu_k, nullptr, nullptr, nullptr, slopes};
  const flashplus_fwd_args f = make_args(c, b);
  BwdRun r;
  r.status = flashplus_fwd(&f);
  r.error = flashplus_last_error();
  if (r.status != FLASHPLUS_STATUS_OK) return r;

  flashplus_bwd_args a = bwd_args_of(f);
  a.dout = tensor(dout, s.dtype, device, c.q_sizes, c.q_strides);
  a.dq = tensor(dq, s.dtype, device, c.q_sizes, c.q_strides);
  a.dk = tensor(dk, s.dtype, device, c.kv_sizes, c.kv_strides);
  a.dv = tensor(dv, s.dtype, device, c.kv_sizes, c.kv_strides);
  a.softmax_d = tensor(softmax_d, FLASHPLUS_DTYPE_FLOAT32, device, c.lse_sizes);
  a.cu_seqlens_q = f.cu_seqlens_q;
  a.cu_seqlens_k = f.cu_seqlens_k;
  a.alibi_slopes = f.alibi_slopes;
  a.max_seqlen_q = f.max_seqlen_q;
  a.max_seqlen_k = f.max_seqlen_k;
  a.softmax_scale = f.softmax_scale;
  a.softcap = f.softcap;
  a.is_causal = f.is_causal;
  a.window_left = f.window_left;
  a.window_right = f.window_right;
  a.dropout_p = f.dropout_p;
  a.philox_seed = f.philox_seed;
  a.philox_offset = f.philox_offset;
  a.deterministic = deterministic ? 1 : 0;
  {
    const ScopedKernelPath scoped(bwd_path);
    r.status = flashplus_bwd(&a);
    r.error = flashplus_last_error();
  }
  if (on_cpu) {
    r.dq = dq_h;
    r.dk = dk_h;
    r.dv = dv_h;
    r.softmax_d = d_h;
    return r;
  }
  device_synchronize();
  auto fetch = [&](void* ptr, auto& host) {
    for (const DeviceBuffer& buffer : keep)
      if (buffer.data() == ptr) buffer.download(host.data(), host.size() * sizeof(host[0]));
  };
  fetch(dq, dq_h);
  fetch(dk, dk_h);
  fetch(dv, dv_h);
  fetch(softmax_d, d_h);
  r.dq = dq_h;
  r.dk = dk_h;
  r.dv = dv_h;
  r.softmax_d = d_h;
  return r;
}

// dout with the case's q layout (padding stays NaN: never read).
std::vector<std::vector<double>> make_dout(const HostCase& c, std::vector<uint16_t>& physical) {
  Rng rng(c.spec.seed * 131 + 7);
  const int n = sequences(c.spec), d = c.spec.d, hq = c.spec.h_q;
  std::vector<std::vector<double>> logical(n);
  physical.assign(c.q.size(), kPoisonBits);
  for (int b = 0; b < n; ++b) {
    logical[b].resize(static_cast<size_t>(c.logical.s_q[b]) * hq * d);
    for (int i = 0; i < c.logical.s_q[b]; ++i)
      for (int h = 0; h < hq; ++h)
        for (int f = 0; f < d; ++f) {
          const double value = round_to(rng.normal(), c.spec.dtype);
          logical[b][(static_cast<size_t>(i) * hq + h) * d + f] = value;
          physical[out_index(c, b, i, h, f)] = to_bits(static_cast<float>(value), c.spec.dtype);
        }
  }
  return logical;
}

// Physical offset of key row j, head h, feature f (dense or varlen K layout of the case).
int64_t key_index(const HostCase& c, int b, int j, int h, int f) {
  const int64_t row = c.cu_k.empty() ? static_cast<int64_t>(b) * c.spec.s_k + j : c.cu_k[b] + j;
  return (row * c.spec.h_k + h) * c.head_stride + f;
}

// Every gradient of `gpu` within 2 x the same-precision reference's error (+ atol) of the fp64
// oracle, finite everywhere, and softmax_d close to the oracle's D. `mode` labels the messages.
void expect_gradients_close(const HostCase& c, const BwdRun& gpu, const AttentionGrads& exact,
                            const AttentionGrads& naive, const char* mode) {
  const FwdSpec& spec = c.spec;
  struct Grad {
    const char* name;
    ErrorStats gpu, naive;
    double scale = 0;
    int64_t nonfinite = 0;
  } grads[3] = {{"dq"}, {"dk"}, {"dv"}};
  ErrorStats d_gpu;
  double d_scale = 1;
  const int d = spec.d;
  for (int b = 0; b < sequences(spec); ++b) {
    for (int h = 0; h < spec.h_q; ++h)
      for (int i = 0; i < c.logical.s_q[b]; ++i) {
        const double ref_d = exact.d_row[b][static_cast<size_t>(h) * c.logical.s_q[b] + i];
        const double got_d = gpu.softmax_d[lse_index(c, b, h, i)];
        d_scale = std::max(d_scale, std::fabs(ref_d));
        d_gpu.add(std::fabs(got_d - ref_d), b, h, i);
        for (int f = 0; f < d; ++f) {
          const size_t at = (static_cast<size_t>(i) * spec.h_q + h) * d + f;
          const double got = from_bits(gpu.dq[out_index(c, b, i, h, f)], spec.dtype);
          if (!std::isfinite(got)) ++grads[0].nonfinite;
          grads[0].gpu.add(std::fabs(got - exact.dq[b][at]), b, h, i, f);
          grads[0].naive.add(std::fabs(naive.dq[b][at] - exact.dq[b][at]), b, h, i, f);
          grads[0].scale = std::max(grads[0].scale, std::fabs(exact.dq[b][at]));
        }
      }
    for (int h = 0; h < spec.h_k; ++h)
      for (int j = 0; j < c.logical.s_k[b]; ++j)
        for (int f = 0; f < d; ++f) {
          const size_t at = (static_cast<size_t>(j) * spec.h_k + h) * d + f;
          for (int g = 1; g <= 2; ++g) {
            const std::vector<uint16_t>& got_bits = g == 1 ? gpu.dk : gpu.dv;
            const std::vector<std::vector<double>>& ref = g == 1 ? exact.dk : exact.dv;
            const std::vector<std::vector<double>>& low = g == 1 ? naive.dk : naive.dv;
            const double got = from_bits(got_bits[key_index(c, b, j, h, f)], spec.dtype);
            if (!std::isfinite(got)) ++grads[g].nonfinite;
            grads[g].gpu.add(std::fabs(got - ref[b][at]), b, h, j, f);
            grads[g].naive.add(std::fabs(low[b][at] - ref[b][at]), b, h, j, f);
            grads[g].scale = std::max(grads[g].scale, std::fabs(ref[b][at]));
          }
        }
  }
  for (const Grad& g : grads) {
    std::printf("[ errors   ] %s %s %s: gpu %.3g naive %.3g (max |ref| %.3g)\n", spec.name.c_str(), mode, g.name,
                g.gpu.max_error, g.naive.max_error, g.scale);
    EXPECT_EQ(g.nonfinite, 0) << mode << " " << g.name << " has NaN/inf (unwritten?)";
    EXPECT_LE(g.gpu.max_error, 2 * g.naive.max_error + 2e-3 * std::max(1.0, g.scale))
        << mode << " " << g.name << ": gpu error " << g.gpu.max_error << " at " << g.gpu.where() << ", same-precision error "
        << g.naive.max_error;
  }
  // D = dO . O uses the forward's rounded O: its error scales with sum |dO| |O| rounding, not |D|.
  EXPECT_LE(d_gpu.max_error, 2e-2 * d_scale) << mode << " softmax_d error at " << d_gpu.where();
}

void check_backward(const FwdSpec& spec) {
  const bool self_check = harness_self_check();
  if (!self_check) FPCUDA_SKIP_WITHOUT_GPU();
  HostCase c = build_case(spec);
  const bool dropout = spec.dropout > 0.f;
  std::vector<uint16_t> dout_physical;
  const std::vector<std::vector<double>> dout = make_dout(c, dout_physical);
  if (!self_check && !cuda_variant_compiled(spec.dtype, spec.d, dropout, "bwd")) {
    const BwdRun r = run_backward(c, dout_physical, false, false);
    EXPECT_EQ(r.status, FLASHPLUS_STATUS_UNSUPPORTED) << r.error;
    GTEST_SKIP() << "variant not compiled in this preset (UNSUPPORTED checked): " << r.error;
  }
  if (dropout) {
    FwdSpec with_mask = spec;
    with_mask.s_dmask = true;
    HostCase masked = build_case(with_mask);
    const RunResult cpu = run_cpu(masked);
    ASSERT_EQ(cpu.status, FLASHPLUS_STATUS_OK) << "CPU backend: " << cpu.error;
    set_keep_mask_from_dmask(c, masked, cpu);
  }
  const AttentionGrads exact = reference_backward_fp64(c.logical, dout);
  const AttentionGrads naive = reference_backward_same_precision(c.logical, dout, spec.dtype);
  // Default mode (fused kernel, atomic fp32 dQ) on each kernel path, then deterministic mode (two
  // kernels, no atomics, sm80 only) twice: all within tolerance, and the deterministic one
  // bit-identical across runs.
  for (const std::string& path : self_check ? std::vector<std::string>{"auto"} : kernel_paths("bwd", spec.dtype, spec.d)) {
    SCOPED_TRACE("FLASHPLUS_KERNEL_PATH=" + path);
    const BwdRun fused = run_backward(c, dout_physical, false, self_check, path);
    if (path == "sm90" && fused.status == FLASHPLUS_STATUS_UNSUPPORTED) {
      // The sm90 kernel does not serve every call; the ones it must serve may not be refused.
      EXPECT_FALSE(sm90_bwd_should_serve(c)) << "the sm90 backward refused a call it serves: " << fused.error;
      std::printf("[ path     ] %s: sm90 backward not taken (%s)\n", spec.name.c_str(), fused.error.c_str());
      continue;
    }
    ASSERT_EQ(fused.status, FLASHPLUS_STATUS_OK) << fused.error;
    expect_gradients_close(c, fused, exact, naive, (path == "auto" ? std::string("default") : "default " + path).c_str());
  }
  const BwdRun deterministic = run_backward(c, dout_physical, true, self_check);
  ASSERT_EQ(deterministic.status, FLASHPLUS_STATUS_OK) << deterministic.error;
  expect_gradients_close(c, deterministic, exact, naive, "deterministic");
  const BwdRun again = run_backward(c, dout_physical, true, self_check);
  ASSERT_EQ(again.status, FLASHPLUS_STATUS_OK) << again.error;
  EXPECT_TRUE(again.dq == deterministic.dq && again.dk == deterministic.dk && again.dv == deterministic.dv)
      << "deterministic backward is not reproducible";
}

std::vector<FwdSpec> bwd_specs() {
  std::vector<FwdSpec> specs;
  auto add = [&](FwdSpec s) { specs.push_back(s); };
  add({.name = "SmallDense", .s_q = 128, .s_k = 128});
  { FwdSpec s{.name = "SmallCausalGqa", .batch = 1, .s_q = 77, .s_k = 130, .h_q = 6, .h_k = 2, .causal = true}; add(s); }
  { FwdSpec s{.name = "SmallVarlenEmpty", .h_q = 2, .h_k = 1, .lens_q = {0, 17, 113, 1}, .lens_k = {5, 0, 200, 64}}; add(s); }
  { FwdSpec s{.name = "SmallDropoutVarlenCausal", .h_q = 2, .h_k = 1, .lens_q = {31, 130}, .lens_k = {64, 130}, .causal = true, .dropout = 0.25f}; add(s); }
  { FwdSpec s{.name = "SmallUnalignedD33", .batch = 2, .s_q = 40, .s_k = 41, .h_q = 3, .h_k = 3, .d = 33, .causal = true}; add(s); }
  { FwdSpec s{.name = "WindowAlibiSoftcap", .s_q = 100, .s_k = 220, .window_left = 40, .window_right = 10, .softcap = 20.f, .alibi = 2}; add(s); }
  { FwdSpec s{.name = "CausalQLongerThanK", .batch = 1, .s_q = 200, .s_k = 70, .causal = true}; add(s); }
  { FwdSpec s{.name = "Seq1023Causal", .batch = 1, .s_q = 1023, .s_k = 1023, .h_q = 2, .h_k = 1, .causal = true}; add(s); }
  { FwdSpec s{.name = "Seq1x513", .batch = 2, .s_q = 1, .s_k = 513}; add(s); }
  { FwdSpec s{.name = "HeadStridePad3", .s_q = 70, .s_k = 90, .head_stride_pad = 3}; add(s); }
  { FwdSpec s{.name = "Hd64", .s_q = 65, .s_k = 97, .d = 64}; add(s); }
  { FwdSpec s{.name = "Fp16Hd256Dropout", .dtype = FLASHPLUS_DTYPE_FLOAT16, .batch = 1, .s_q = 70, .s_k = 130, .h_q = 4, .h_k = 2, .d = 256, .causal = true, .dropout = 0.1f}; add(s); }
  // d = 256 (one Q / dO buffer): several query tiles per key tile, GQA, a ragged causal edge.
  { FwdSpec s{.name = "Hd256CausalGqaTiles", .batch = 2, .s_q = 300, .s_k = 333, .h_q = 4, .h_k = 2, .d = 256, .causal = true}; add(s); }
  // The sm90 d = 256 backward splits query columns and features over its warpgroups, with P^T and
  // dS^T in shared memory: its masks per column half (window both sides, ALiBi, varlen with a
  // one-row and an empty-key-overlap sequence), softcap's chain rule, and head dims padded to 256.
  { FwdSpec s{.name = "Hd256VarlenWindowAlibi", .h_q = 4, .h_k = 2, .d = 256, .lens_q = {1, 130, 77}, .lens_k = {65, 200, 77}, .window_left = 50, .window_right = 10, .alibi = 1}; add(s); }
  { FwdSpec s{.name = "Hd256SoftcapLong", .batch = 1, .s_q = 200, .s_k = 300, .h_q = 2, .h_k = 2, .d = 256, .softcap = 20.f, .input_scale = 2.0}; add(s); }
  { FwdSpec s{.name = "Hd200CausalSqLonger", .batch = 2, .s_q = 150, .s_k = 100, .h_q = 2, .h_k = 1, .d = 200, .causal = true}; add(s); }
  { FwdSpec s{.name = "Hd192Varlen", .h_q = 2, .h_k = 2, .d = 192, .lens_q = {50, 129}, .lens_k = {80, 129}}; add(s); }
  { FwdSpec s{.name = "Fp16Hd96Softcap", .dtype = FLASHPLUS_DTYPE_FLOAT16, .s_q = 111, .s_k = 150, .d = 96, .softcap = 15.f, .input_scale = 2.0}; add(s); }
  // Shapes for the sm90 backward's 128-key CTAs and transposed masks: key ranges that end inside a
  // CTA, windows on both sides with GQA, varlen with ALiBi, a causal softcap over several tiles,
  // and its d = 64 / fp16 variants (full preset).
  { FwdSpec s{.name = "GqaWindowBothSides", .batch = 2, .s_q = 190, .s_k = 260, .h_q = 6, .h_k = 2, .window_left = 70, .window_right = 20}; add(s); }
  { FwdSpec s{.name = "VarlenCausalGqaAlibi", .h_q = 4, .h_k = 2, .lens_q = {1, 128, 300, 17}, .lens_k = {1, 256, 300, 500}, .causal = true, .alibi = 1}; add(s); }
  { FwdSpec s{.name = "Softcap30CausalLong", .s_q = 300, .s_k = 700, .causal = true, .softcap = 30.f, .input_scale = 3.0}; add(s); }
  { FwdSpec s{.name = "Hd64CausalMqa", .batch = 2, .s_q = 257, .s_k = 257, .h_q = 4, .h_k = 1, .d = 64, .causal = true}; add(s); }
  { FwdSpec s{.name = "Fp16Hd128VarlenWindow", .dtype = FLASHPLUS_DTYPE_FLOAT16, .h_q = 2, .h_k = 2, .lens_q = {129, 3, 200}, .lens_k = {300, 64, 129}, .window_left = 50}; add(s); }
  return specs;
}

class CudaBwdCase : public ::testing::TestWithParam<FwdSpec> {};

TEST_P(CudaBwdCase, MatchesFp64Gradients) { check_backward(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Cases, CudaBwdCase, ::testing::ValuesIn(bwd_specs()),
                         [](const ::testing::TestParamInfo<FwdSpec>& info) { return info.param.name; });

// Same inputs, same result: the kernel has no run-to-run nondeterminism (no atomics in forward).
TEST(CudaFwdRepeat, SmallBitIdenticalRuns) {
  FPCUDA_SKIP_WITHOUT_GPU();
  FwdSpec s{.name = "repeat", .batch = 2, .s_q = 100, .s_k = 300, .causal = true, .num_splits = 3};
  if (!cuda_variant_compiled(s.dtype, s.d, false, "fwd")) GTEST_SKIP() << "variant not compiled";
  const HostCase c = build_case(s);
  const RunResult first = run_gpu(c), second = run_gpu(c);
  ASSERT_EQ(first.status, FLASHPLUS_STATUS_OK) << first.error;
  EXPECT_EQ(first.out, second.out);
  EXPECT_EQ(0, std::memcmp(first.lse.data(), second.lse.data(), first.lse.size() * sizeof(float)));
}

// Forward arguments of the timing harnesses: dense (b, s, h, d) q / k / v / out, the LSE, 1 / sqrt(d).
flashplus_fwd_args dense_fwd_args(const DeviceBuffer& q, const DeviceBuffer& k, const DeviceBuffer& v,
                                  const DeviceBuffer& out, const DeviceBuffer& lse, flashplus_dtype dtype,
                                  const std::vector<int64_t>& shape, bool causal) {
  flashplus_fwd_args a;
  flashplus_fwd_args_init(&a);
  a.q = tensor(q.data(), dtype, FLASHPLUS_DEVICE_CUDA, shape);
  a.k = tensor(k.data(), dtype, FLASHPLUS_DEVICE_CUDA, shape);
  a.v = tensor(v.data(), dtype, FLASHPLUS_DEVICE_CUDA, shape);
  a.out = tensor(out.data(), dtype, FLASHPLUS_DEVICE_CUDA, shape);
  a.softmax_lse = tensor(lse.data(), FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DEVICE_CUDA, {shape[0], shape[2], shape[1]});
  a.softmax_scale = 1.f / std::sqrt(static_cast<float>(shape[3]));
  a.is_causal = causal;
  return a;
}

// Median of `runs` CUDA-event timings (ms) of `launch` on the default stream; the caller warms up.
template <typename Launch>
float median_event_ms(Launch&& launch, int runs) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<float> ms(runs);
  for (float& t : ms) {
    cudaEventRecord(start);
    launch();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    cudaEventElapsedTime(&t, start, stop);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[runs / 2];
}

// Forward throughput on a standard shape (16k tokens, hidden 2048). Disabled by default: run with
// --gtest_also_run_disabled_tests --gtest_filter='*Timing*'. FLOPs as flash-attn counts them.
TEST(CudaFwdTiming, DISABLED_Report) {
  FPCUDA_SKIP_WITHOUT_GPU();
  for (int d : {64, 128, 256}) {
    for (bool causal : {false, true}) {
      for (int seqlen : {512, 2048, 8192}) {
        const flashplus_dtype dtype = cuda_variant_compiled(FLASHPLUS_DTYPE_BFLOAT16, d, false, "fwd") ? FLASHPLUS_DTYPE_BFLOAT16
                                                                                                 : FLASHPLUS_DTYPE_FLOAT16;
        if (!cuda_variant_compiled(dtype, d, false, "fwd")) continue;
        const int batch = 16384 / seqlen, heads = 2048 / d;
        const size_t elems = static_cast<size_t>(batch) * seqlen * heads * d;
        std::vector<uint16_t> host(elems);
        Rng rng(d + seqlen);
        for (auto& x : host) x = to_bits(static_cast<float>(rng.normal()), dtype);
        DeviceBuffer q = DeviceBuffer::from(host), k = DeviceBuffer::from(host), v = DeviceBuffer::from(host);
        DeviceBuffer out(elems * 2), lse(static_cast<size_t>(batch) * heads * seqlen * 4);
        flashplus_fwd_args a = dense_fwd_args(q, k, v, out, lse, dtype, {batch, seqlen, heads, d}, causal);
        a.num_splits = 1;
        for (const std::string& path : kernel_paths("fwd", dtype, d)) {
          const ScopedKernelPath scoped(path);
          for (int warm = 0; warm < 3; ++warm) ASSERT_EQ(flashplus_fwd(&a), FLASHPLUS_STATUS_OK) << flashplus_last_error();
          const float ms = median_event_ms([&] { flashplus_fwd(&a); }, 10);
          const double flops = 4.0 * batch * heads * seqlen * static_cast<double>(seqlen) * d / (causal ? 2 : 1);
          std::printf("[ timing   ] fwd %s path=%s d=%d s=%d b=%d h=%d %s: %.3f ms, %.1f TFLOP/s\n", dtype_name(dtype),
                      path.c_str(), d, seqlen, batch, heads, causal ? "causal" : "full", ms, flops / (ms * 1e-3) / 1e12);
        }
      }
    }
  }
}

// Backward throughput (FLOPs as flash-attn counts them: 2.5x the forward's). Disabled by default.
TEST(CudaBwdTiming, DISABLED_Report) {
  FPCUDA_SKIP_WITHOUT_GPU();
  for (int d : {64, 128, 256}) {
    for (bool causal : {false, true}) {
      for (int seqlen : {2048, 8192}) {
        const flashplus_dtype dtype = FLASHPLUS_DTYPE_BFLOAT16;
        if (!cuda_variant_compiled(dtype, d, false, "bwd")) continue;
        const int batch = 16384 / seqlen, heads = 2048 / d;
        const size_t elems = static_cast<size_t>(batch) * seqlen * heads * d;
        std::vector<uint16_t> host(elems);
        Rng rng(d);
        for (auto& x : host) x = to_bits(static_cast<float>(rng.normal()), dtype);
        DeviceBuffer q = DeviceBuffer::from(host), k = DeviceBuffer::from(host), v = DeviceBuffer::from(host);
        DeviceBuffer dout = DeviceBuffer::from(host), out(elems * 2), dq(elems * 2), dk(elems * 2), dv(elems * 2);
        DeviceBuffer lse(static_cast<size_t>(batch) * heads * seqlen * 4), dsum(static_cast<size_t>(batch) * heads * seqlen * 4);
        const std::vector<int64_t> shape{batch, seqlen, heads, d};
        const flashplus_fwd_args f = dense_fwd_args(q, k, v, out, lse, dtype, shape, causal);
        ASSERT_EQ(flashplus_fwd(&f), FLASHPLUS_STATUS_OK) << flashplus_last_error();
        flashplus_bwd_args a = bwd_args_of(f);
        a.dout = tensor(dout.data(), dtype, FLASHPLUS_DEVICE_CUDA, shape);
        a.dq = tensor(dq.data(), dtype, FLASHPLUS_DEVICE_CUDA, shape);
        a.dk = tensor(dk.data(), dtype, FLASHPLUS_DEVICE_CUDA, shape);
        a.dv = tensor(dv.data(), dtype, FLASHPLUS_DEVICE_CUDA, shape);
        a.softmax_d = tensor(dsum.data(), FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DEVICE_CUDA, {batch, heads, seqlen});
        a.softmax_scale = f.softmax_scale;
        a.is_causal = causal;
        for (const std::string& path : kernel_paths("bwd", dtype, d)) {
          const ScopedKernelPath scoped(path);
          for (int warm = 0; warm < 2; ++warm) ASSERT_EQ(flashplus_bwd(&a), FLASHPLUS_STATUS_OK) << flashplus_last_error();
          const float ms = median_event_ms([&] { flashplus_bwd(&a); }, 7);
          const double flops = 2.5 * 4.0 * batch * heads * seqlen * static_cast<double>(seqlen) * d / (causal ? 2 : 1);
          std::printf("[ timing   ] bwd bf16 path=%s d=%d s=%d b=%d h=%d %s: %.3f ms, %.1f TFLOP/s\n", path.c_str(), d,
                      seqlen, batch, heads, causal ? "causal" : "full", ms, flops / (ms * 1e-3) / 1e12);
        }
      }
    }
  }
}

}  // namespace
}  // namespace fpcuda
