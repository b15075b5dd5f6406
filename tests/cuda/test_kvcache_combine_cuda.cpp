// test_kvcache_combine_cuda.cpp — flashplus_fwd_kvcache and flashplus_combine on the GPU.
//
// KV-cache: the GPU and the CPU backend (independent implementations) run the same call on copies
// of the same cache; the appended, rotated cache rows and the untouched ones must agree to rounding,
// and out / LSE to fp32-accumulation noise. Combine: checked against an fp64 host merge, including
// partials that saw no key (LSE +-inf), out aliasing partial 0, and more partials than one launch
// takes (the chunked path).
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_test_support.h"

namespace fpcuda {
namespace {

struct KvSpec {
  std::string name;
  int batch = 2, s_q = 3, s_new = 3, h_q = 4, h_k = 2, d = 128;
  int cache_batch = 3, s_cache = 256;  // dense cache entries x rows (paged: rows per sequence)
  int page_size = 0;
  std::vector<int> cache_seqlens{100, 17};
  std::vector<int> cache_batch_idx;  // dense only
  std::vector<int> leftpad;
  int rotary_dim = 64;               // 0 = no rotary
  bool interleaved = true;
  bool causal = true;
  int num_splits = 1;
  uint64_t seed = 11;
};

std::ostream& operator<<(std::ostream& os, const KvSpec& s) { return os << s.name; }

struct KvHost {
  std::vector<uint16_t> q, k_cache, v_cache, k_new, v_new, cos, sin;
  std::vector<int32_t> seqlens, batch_idx, leftpad, block_table;
  int pages = 0, max_blocks = 0, s_ro = 0;
};

KvHost build(const KvSpec& s) {
  const flashplus_dtype dt = FLASHPLUS_DTYPE_BFLOAT16;
  Rng rng(s.seed);
  KvHost h;
  auto fill = [&](std::vector<uint16_t>& v, size_t n) {
    v.resize(n);
    for (auto& x : v) x = to_bits(static_cast<float>(rng.normal()), dt);
  };
  fill(h.q, static_cast<size_t>(s.batch) * s.s_q * s.h_q * s.d);
  fill(h.k_new, static_cast<size_t>(s.batch) * s.s_new * s.h_k * s.d);
  fill(h.v_new, static_cast<size_t>(s.batch) * s.s_new * s.h_k * s.d);
  if (s.page_size > 0) {
    h.max_blocks = (s.s_cache + s.page_size - 1) / s.page_size;
    h.pages = s.batch * h.max_blocks + 3;
    std::vector<int32_t> order(h.pages);
    for (int i = 0; i < h.pages; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng.engine());
    h.block_table.assign(order.begin(), order.begin() + s.batch * h.max_blocks);
    fill(h.k_cache, static_cast<size_t>(h.pages) * s.page_size * s.h_k * s.d);
    fill(h.v_cache, static_cast<size_t>(h.pages) * s.page_size * s.h_k * s.d);
  } else {
    fill(h.k_cache, static_cast<size_t>(s.cache_batch) * s.s_cache * s.h_k * s.d);
    fill(h.v_cache, static_cast<size_t>(s.cache_batch) * s.s_cache * s.h_k * s.d);
  }
  h.seqlens.assign(s.cache_seqlens.begin(), s.cache_seqlens.end());
  h.batch_idx.assign(s.cache_batch_idx.begin(), s.cache_batch_idx.end());
  h.leftpad.assign(s.leftpad.begin(), s.leftpad.end());
  if (s.rotary_dim > 0) {
    h.s_ro = s.s_cache + s.s_new;
    const int half = s.rotary_dim / 2;
    h.cos.resize(static_cast<size_t>(h.s_ro) * half);
    h.sin.resize(h.cos.size());
    for (int p = 0; p < h.s_ro; ++p)
      for (int t = 0; t < half; ++t) {
        const double angle = p * std::pow(10000.0, -2.0 * t / s.rotary_dim);
        h.cos[static_cast<size_t>(p) * half + t] = to_bits(static_cast<float>(std::cos(angle)), dt);
        h.sin[static_cast<size_t>(p) * half + t] = to_bits(static_cast<float>(std::sin(angle)), dt);
      }
  }
  return h;
}

struct KvResult {
  flashplus_status status;
  std::string error;
  std::vector<uint16_t> out, k_cache, v_cache;
  std::vector<float> lse;
};

template <typename Ptr>
flashplus_kvcache_args kv_args(const KvSpec& s, const KvHost& h, flashplus_device_type dev, Ptr ptr) {
  const flashplus_dtype dt = FLASHPLUS_DTYPE_BFLOAT16;
  flashplus_kvcache_args a;
  flashplus_kvcache_args_init(&a);
  a.q = tensor(ptr("q"), dt, dev, {s.batch, s.s_q, s.h_q, s.d});
  if (s.page_size > 0) {
    a.k_cache = tensor(ptr("k_cache"), dt, dev, {h.pages, s.page_size, s.h_k, s.d});
    a.v_cache = tensor(ptr("v_cache"), dt, dev, {h.pages, s.page_size, s.h_k, s.d});
    a.block_table = tensor(ptr("block_table"), FLASHPLUS_DTYPE_INT32, dev, {s.batch, h.max_blocks});
  } else {
    a.k_cache = tensor(ptr("k_cache"), dt, dev, {s.cache_batch, s.s_cache, s.h_k, s.d});
    a.v_cache = tensor(ptr("v_cache"), dt, dev, {s.cache_batch, s.s_cache, s.h_k, s.d});
  }
  if (s.s_new > 0) {
    a.k_new = tensor(ptr("k_new"), dt, dev, {s.batch, s.s_new, s.h_k, s.d});
    a.v_new = tensor(ptr("v_new"), dt, dev, {s.batch, s.s_new, s.h_k, s.d});
  }
  if (s.rotary_dim > 0) {
    a.rotary_cos = tensor(ptr("cos"), dt, dev, {h.s_ro, s.rotary_dim / 2});
    a.rotary_sin = tensor(ptr("sin"), dt, dev, {h.s_ro, s.rotary_dim / 2});
  }
  a.cache_seqlens = tensor(ptr("seqlens"), FLASHPLUS_DTYPE_INT32, dev, {s.batch});
  if (!h.batch_idx.empty()) a.cache_batch_idx = tensor(ptr("batch_idx"), FLASHPLUS_DTYPE_INT32, dev, {s.batch});
  if (!h.leftpad.empty()) a.cache_leftpad = tensor(ptr("leftpad"), FLASHPLUS_DTYPE_INT32, dev, {s.batch});
  a.out = tensor(ptr("out"), dt, dev, {s.batch, s.s_q, s.h_q, s.d});
  a.softmax_lse = tensor(ptr("lse"), FLASHPLUS_DTYPE_FLOAT32, dev, {s.batch, s.h_q, s.s_q});
  a.softmax_scale = 1.f / std::sqrt(static_cast<float>(s.d));
  a.is_causal = s.causal;
  a.rotary_interleaved = s.interleaved;
  a.num_splits = s.num_splits;
  return a;
}

KvResult run_kv_cpu(const KvSpec& s, KvHost h) {
  KvResult r;
  r.out.assign(h.q.size(), 0xFFFF);
  r.lse.assign(static_cast<size_t>(s.batch) * s.h_q * s.s_q, std::numeric_limits<float>::quiet_NaN());
  auto ptr = [&](const std::string& name) -> void* {
    if (name == "q") return h.q.data();
    if (name == "k_cache") return h.k_cache.data();
    if (name == "v_cache") return h.v_cache.data();
    if (name == "k_new") return h.k_new.data();
    if (name == "v_new") return h.v_new.data();
    if (name == "cos") return h.cos.data();
    if (name == "sin") return h.sin.data();
    if (name == "seqlens") return h.seqlens.data();
    if (name == "batch_idx") return h.batch_idx.data();
    if (name == "leftpad") return h.leftpad.data();
    if (name == "block_table") return h.block_table.data();
    if (name == "out") return r.out.data();
    return r.lse.data();
  };
  const flashplus_kvcache_args a = kv_args(s, h, FLASHPLUS_DEVICE_CPU, ptr);
  r.status = flashplus_fwd_kvcache(&a);
  r.error = flashplus_last_error();
  r.k_cache = h.k_cache;
  r.v_cache = h.v_cache;
  return r;
}

KvResult run_kv_gpu(const KvSpec& s, const KvHost& h) {
  DeviceBuffer q = DeviceBuffer::from(h.q), kc = DeviceBuffer::from(h.k_cache), vc = DeviceBuffer::from(h.v_cache);
  DeviceBuffer kn = DeviceBuffer::from(h.k_new), vn = DeviceBuffer::from(h.v_new);
  DeviceBuffer cs = DeviceBuffer::from(h.cos), sn = DeviceBuffer::from(h.sin);
  DeviceBuffer sl = DeviceBuffer::from(h.seqlens), bi = DeviceBuffer::from(h.batch_idx);
  DeviceBuffer lp = DeviceBuffer::from(h.leftpad), bt = DeviceBuffer::from(h.block_table);
  DeviceBuffer out(h.q.size() * 2), lse(static_cast<size_t>(s.batch) * s.h_q * s.s_q * 4);
  out.fill_bytes(0xFF);
  lse.fill_bytes(0xFF);
  auto ptr = [&](const std::string& name) -> void* {
    if (name == "q") return q.data();
    if (name == "k_cache") return kc.data();
    if (name == "v_cache") return vc.data();
    if (name == "k_new") return kn.data();
    if (name == "v_new") return vn.data();
    if (name == "cos") return cs.data();
    if (name == "sin") return sn.data();
    if (name == "seqlens") return sl.data();
    if (name == "batch_idx") return bi.data();
    if (name == "leftpad") return lp.data();
    if (name == "block_table") return bt.data();
    if (name == "out") return out.data();
    return lse.data();
  };
  const flashplus_kvcache_args a = kv_args(s, h, FLASHPLUS_DEVICE_CUDA, ptr);
  KvResult r;
  r.status = flashplus_fwd_kvcache(&a);
  r.error = flashplus_last_error();
  device_synchronize();
  r.out = out.to_host<uint16_t>(h.q.size());
  r.lse = lse.to_host<float>(static_cast<size_t>(s.batch) * s.h_q * s.s_q);
  r.k_cache = kc.to_host<uint16_t>(h.k_cache.size());
  r.v_cache = vc.to_host<uint16_t>(h.v_cache.size());
  return r;
}

// Largest |a - b| over bf16 arrays, and the count of non-finite GPU values.
double max_bf16_diff(const std::vector<uint16_t>& gpu, const std::vector<uint16_t>& cpu, int64_t* nonfinite) {
  double worst = 0;
  for (size_t i = 0; i < gpu.size(); ++i) {
    const double a = bf16_bits_to_float(gpu[i]), b = bf16_bits_to_float(cpu[i]);
    if (!std::isfinite(a)) ++*nonfinite;
    worst = std::max(worst, std::fabs(a - b) / std::max(1.0, std::fabs(b)));
  }
  return worst;
}

class CudaKvCache : public ::testing::TestWithParam<KvSpec> {};

TEST_P(CudaKvCache, MatchesCpuBackend) {
  FPCUDA_SKIP_WITHOUT_GPU();
  const KvSpec& s = GetParam();
  if (!cuda_variant_compiled(FLASHPLUS_DTYPE_BFLOAT16, s.d, false, "fwd")) GTEST_SKIP() << "variant not compiled";
  const KvHost h = build(s);
  const KvResult cpu = run_kv_cpu(s, h);
  ASSERT_EQ(cpu.status, FLASHPLUS_STATUS_OK) << "CPU backend: " << cpu.error;
  const KvResult gpu = run_kv_gpu(s, h);
  ASSERT_EQ(gpu.status, FLASHPLUS_STATUS_OK) << gpu.error;
  int64_t nonfinite = 0;
  // Cache rows: appended rows are rotated in fp32 and rounded once by both; allow one bf16 ulp.
  EXPECT_LE(max_bf16_diff(gpu.k_cache, cpu.k_cache, &nonfinite), 1.0 / 128) << "k_cache after append";
  EXPECT_EQ(max_bf16_diff(gpu.v_cache, cpu.v_cache, &nonfinite), 0.0) << "v_cache after append";
  EXPECT_LE(max_bf16_diff(gpu.out, cpu.out, &nonfinite), 2e-2) << "out";
  EXPECT_EQ(nonfinite, 0);
  double lse_diff = 0;
  for (size_t i = 0; i < gpu.lse.size(); ++i) {
    if (std::isinf(cpu.lse[i])) {
      EXPECT_EQ(gpu.lse[i], cpu.lse[i]) << "lse " << i;
      continue;
    }
    lse_diff = std::max(lse_diff, std::fabs(static_cast<double>(gpu.lse[i]) - cpu.lse[i]));
  }
  EXPECT_LE(lse_diff, 1e-2) << "lse";
}

std::vector<KvSpec> kv_specs() {
  std::vector<KvSpec> v;
  v.push_back({.name = "SmallDenseInterleavedCausal", .cache_batch_idx = {2, 0}});
  v.push_back({.name = "DenseNeoxLeftpad", .leftpad = {10, 3}, .interleaved = false});
  v.push_back({.name = "PagedNeoxNotCausal", .page_size = 16, .interleaved = false, .causal = false});
  v.push_back({.name = "SmallPaged1Decode", .s_q = 1, .s_new = 1, .s_cache = 64, .page_size = 1, .cache_seqlens = {63, 0}});
  v.push_back({.name = "DecodeSplitHeuristic", .batch = 1, .s_q = 1, .s_new = 1, .h_q = 8, .h_k = 1, .cache_batch = 1,
               .s_cache = 2048, .cache_seqlens = {2000}, .num_splits = 0});
  v.push_back({.name = "NoAppendNoRotary", .s_new = 0, .rotary_dim = 0});
  // Tile choice (cuda_backend.cu): at most 16 tile rows (s_q x the packed group) take the decode
  // tile, more the 128-row tile; both with split-KV.
  // The decode tile's warps own 16 keys each of a 64-key tile (fwd_kernel_sm80.cuh): sequences of
  // 1, 6, 17 and 70 keys leave one, two or three warps without a key in a tile, or in a whole
  // split (two splits: the second is a lone partial tile, or empty), before their merge.
  v.push_back({.name = "Decode16RowsPackedSplits", .s_q = 2, .s_new = 2, .h_q = 16, .h_k = 2,
               .cache_seqlens = {250, 77}, .num_splits = 3});
  v.push_back({.name = "DecodeShortKeySlices", .batch = 4, .s_q = 1, .s_new = 1, .h_q = 8, .h_k = 2, .cache_batch = 4,
               .s_cache = 128, .cache_seqlens = {0, 5, 16, 69}, .rotary_dim = 0, .num_splits = 2});
  v.push_back({.name = "Decode24RowsBigTileSplits", .s_q = 3, .s_new = 3, .h_q = 16, .h_k = 2,
               .cache_seqlens = {250, 77}, .num_splits = 3});
  // d = 96: the decode tile whose loads run on 96 of its 128 threads (tile_shape.h
  // fwd_load_threads_sm80), contiguous and paged, with splits and a GQA group of 4.
  v.push_back({.name = "DecodeHd96Splits", .batch = 3, .s_q = 1, .s_new = 1, .h_q = 8, .h_k = 2, .d = 96,
               .cache_batch = 3, .s_cache = 700, .cache_seqlens = {650, 3, 130}, .rotary_dim = 32, .num_splits = 3});
  v.push_back({.name = "DecodeHd96PagedSplits", .batch = 2, .s_q = 2, .s_new = 2, .h_q = 8, .h_k = 2, .d = 96,
               .s_cache = 300, .page_size = 16, .cache_seqlens = {290, 77}, .num_splits = 0});
  v.push_back({.name = "PagedHd100GeneralLoader", .d = 100, .page_size = 16, .cache_seqlens = {70, 33},
               .rotary_dim = 32});
  v.push_back({.name = "DecodeMhaOneRowPaged16", .s_q = 1, .s_new = 1, .h_q = 3, .h_k = 3, .page_size = 16,
               .cache_seqlens = {255, 130}, .causal = false, .num_splits = 0});
  // More splits than one lane's LSE register holds (split_combine_kernel.cuh: 32 per register),
  // an odd count, and splits left empty by the rounding of the per-split tile count.
  v.push_back({.name = "DecodeHundredSplits", .batch = 1, .s_q = 1, .s_new = 1, .h_q = 8, .h_k = 2,
               .cache_batch = 1, .s_cache = 8192, .cache_seqlens = {8100}, .num_splits = 101});
  v.push_back({.name = "DecodeMaxSplitsHd64Paged", .batch = 2, .s_q = 1, .s_new = 1, .h_q = 8, .h_k = 1, .d = 64,
               .cache_batch = 2, .s_cache = 8192, .page_size = 16, .cache_seqlens = {8192 - 1, 5000},
               .rotary_dim = 32, .num_splits = 500});
  v.push_back({.name = "DecodeHd256SplitHeuristic", .batch = 1, .s_q = 1, .s_new = 1, .h_q = 4, .h_k = 1, .d = 256,
               .cache_batch = 1, .s_cache = 4096, .cache_seqlens = {4000}, .num_splits = 0});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaKvCache, ::testing::ValuesIn(kv_specs()),
                         [](const ::testing::TestParamInfo<KvSpec>& info) { return info.param.name; });

// ---- bad index contents on CUDA ----
// Validation cannot read device index tensors, so the kernels check them where they use them.
// One batch entry (1) gets a bad index; the call must still return OK, record the right
// FLASHPLUS_INDEX_ERROR_* bit, leave entry 0's results exactly as in a run with valid indices,
// write nothing into entry 1's cache rows, and turn entry 1's outputs into NaN. The "Small" cases
// also run under compute-sanitizer memcheck (tools/device_check.sh): no access out of bounds.

struct BadIndexSpec {
  std::string name;
  KvSpec base;
  uint32_t expected_bit;
  std::function<void(KvHost&, const KvSpec&)> corrupt;  // makes entry 1's index bad
  bool out_nan = true;  // entry 1's out / LSE become NaN (every query sees the bad keys)
};

std::ostream& operator<<(std::ostream& os, const BadIndexSpec& s) { return os << s.name; }

class CudaKvCacheBadIndex : public ::testing::TestWithParam<BadIndexSpec> {};

TEST_P(CudaKvCacheBadIndex, RecordedContainedAndNaN) {
  FPCUDA_SKIP_WITHOUT_GPU();
  const BadIndexSpec& spec = GetParam();
  const KvSpec& s = spec.base;
  if (!cuda_variant_compiled(FLASHPLUS_DTYPE_BFLOAT16, s.d, false, "fwd")) GTEST_SKIP() << "variant not compiled";
  uint32_t stale = 0;
  ASSERT_EQ(flashplus_take_index_errors(0, &stale), FLASHPLUS_STATUS_OK) << flashplus_last_error();

  const KvHost good = build(s);
  const KvResult valid = run_kv_gpu(s, good);
  ASSERT_EQ(valid.status, FLASHPLUS_STATUS_OK) << valid.error;
  uint32_t flags = 1234;
  ASSERT_EQ(flashplus_take_index_errors(0, &flags), FLASHPLUS_STATUS_OK);
  EXPECT_EQ(flags, 0u) << "valid indices recorded an error";

  KvHost bad = good;
  spec.corrupt(bad, s);
  const KvResult got = run_kv_gpu(s, bad);
  ASSERT_EQ(got.status, FLASHPLUS_STATUS_OK) << got.error;
  ASSERT_EQ(flashplus_take_index_errors(0, &flags), FLASHPLUS_STATUS_OK);
  EXPECT_NE(flags & spec.expected_bit, 0u) << "recorded bits 0x" << std::hex << flags;
  ASSERT_EQ(flashplus_take_index_errors(0, &flags), FLASHPLUS_STATUS_OK);
  EXPECT_EQ(flags, 0u) << "taking the bits clears them";

  // Entry 0: bit-identical to the valid run (same kernels, same split count).
  const size_t out_per_entry = static_cast<size_t>(s.s_q) * s.h_q * s.d;
  const size_t lse_per_entry = static_cast<size_t>(s.h_q) * s.s_q;
  for (size_t i = 0; i < out_per_entry; ++i) ASSERT_EQ(got.out[i], valid.out[i]) << "entry 0 out " << i;
  for (size_t i = 0; i < lse_per_entry; ++i) ASSERT_EQ(got.lse[i], valid.lse[i]) << "entry 0 lse " << i;
  // Entry 1: NaN where its outputs are known.
  if (spec.out_nan) {
    int64_t finite = 0;
    for (size_t i = out_per_entry; i < 2 * out_per_entry; ++i) finite += std::isfinite(bf16_bits_to_float(got.out[i]));
    for (size_t i = lse_per_entry; i < 2 * lse_per_entry; ++i) finite += std::isfinite(got.lse[i]);
    EXPECT_EQ(finite, 0) << "entry 1 outputs that are not NaN";
  }
  // The caches: nothing is written that the valid run did not write (a bad entry appends nothing,
  // and nothing lands outside the cache rows of the two entries).
  int64_t changed = 0;
  for (size_t i = 0; i < got.k_cache.size(); ++i) {
    const bool valid_run_wrote = valid.k_cache[i] != good.k_cache[i] || valid.v_cache[i] != good.v_cache[i];
    if (valid_run_wrote) continue;
    changed += got.k_cache[i] != good.k_cache[i] || got.v_cache[i] != good.v_cache[i];
  }
  EXPECT_EQ(changed, 0) << "cache elements written outside entry 0's appended rows";
}

std::vector<BadIndexSpec> bad_index_specs() {
  std::vector<BadIndexSpec> v;
  const KvSpec paged{.name = "paged", .s_q = 2, .s_new = 2, .s_cache = 64, .page_size = 16, .cache_seqlens = {40, 17}};
  v.push_back({"SmallBlockTablePastEnd", paged, FLASHPLUS_INDEX_ERROR_BLOCK_TABLE,
               [](KvHost& h, const KvSpec&) { h.block_table[h.max_blocks + 0] = h.pages + 5; }});
  // Slot 1 of entry 1 holds the append target (rows 17, 18) and keys 16..18: append skipped, NaN out.
  v.push_back({"SmallBlockTableNegative", paged, FLASHPLUS_INDEX_ERROR_BLOCK_TABLE,
               [](KvHost& h, const KvSpec&) { h.block_table[h.max_blocks + 1] = -3; }});
  const KvSpec dense{.name = "dense", .cache_batch_idx = {2, 0}};
  v.push_back({"SmallCacheBatchIdxPastEnd", dense, FLASHPLUS_INDEX_ERROR_CACHE_BATCH_IDX,
               [](KvHost& h, const KvSpec& s) { h.batch_idx[1] = s.cache_batch + 4; }});
  v.push_back({"SmallCacheBatchIdxNegative", dense, FLASHPLUS_INDEX_ERROR_CACHE_BATCH_IDX,
               [](KvHost& h, const KvSpec&) { h.batch_idx[1] = -1; }});
  v.push_back({"SmallCacheSeqlensPastCapacity", dense, FLASHPLUS_INDEX_ERROR_SEQUSED_K,
               [](KvHost& h, const KvSpec& s) { h.seqlens[1] = s.s_cache + 9; }});
  v.push_back({"SmallCacheSeqlensNegative", dense, FLASHPLUS_INDEX_ERROR_SEQUSED_K,
               [](KvHost& h, const KvSpec&) { h.seqlens[1] = -7; }});
  const KvSpec leftpad{.name = "leftpad", .leftpad = {10, 3}, .rotary_dim = 0};
  v.push_back({"SmallLeftpadPastEnd", leftpad, FLASHPLUS_INDEX_ERROR_LEFTPAD_K,
               [](KvHost& h, const KvSpec& s) { h.leftpad[1] = h.seqlens[1] + s.s_new + 1; }});
  // d = 100 is not a multiple of 8: the general loader's element-wise gather (load_rows), the path
  // every paged call takes on a variant whose loader cannot keep one column per thread (d = 96 /
  // 192 variants, unaligned K/V). It too must turn the bad page's keys into NaN.
  KvSpec general = paged;
  general.d = 100;
  general.rotary_dim = 0;
  v.push_back({"SmallBlockTableNegativeGeneralLoader", general, FLASHPLUS_INDEX_ERROR_BLOCK_TABLE,
               [](KvHost& h, const KvSpec&) { h.block_table[h.max_blocks + 1] = -3; }});
  KvSpec split = paged;
  split.s_q = 1;
  split.s_new = 1;
  split.s_cache = 256;
  split.cache_seqlens = {200, 150};
  split.num_splits = 3;  // entry 1: 151 keys in 3 key tiles, the bad page (rows 32..47) in one split
  v.push_back({"SmallBlockTableSplitKV", split, FLASHPLUS_INDEX_ERROR_BLOCK_TABLE,
               [](KvHost& h, const KvSpec&) { h.block_table[h.max_blocks + 2] = 1 << 30; }});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaKvCacheBadIndex, ::testing::ValuesIn(bad_index_specs()),
                         [](const ::testing::TestParamInfo<BadIndexSpec>& info) { return info.param.name; });

// ---- combine ----

struct CombineSpec {
  int partials = 3;
  int batch = 2, seqlen = 33, heads = 3, head_dim = 72;
  flashplus_dtype partial_dtype = FLASHPLUS_DTYPE_FLOAT32;
  flashplus_dtype out_dtype = FLASHPLUS_DTYPE_FLOAT32;
  bool alias_partial0 = false;  // out is partial 0's tensor (needs equal dtypes)
};

void check_combine(const CombineSpec& s) {
  FPCUDA_SKIP_WITHOUT_GPU();
  Rng rng(s.partials * 31 + s.head_dim);
  const int64_t rows = static_cast<int64_t>(s.batch) * s.seqlen * s.heads;
  const int64_t out_elems = rows * s.head_dim;
  std::vector<std::vector<double>> out_values(s.partials), lse_values(s.partials);
  std::vector<DeviceBuffer> out_buffers, lse_buffers;
  std::vector<flashplus_tensor> out_tensors, lse_tensors;
  for (int p = 0; p < s.partials; ++p) {
    auto& o = out_values[p];
    auto& l = lse_values[p];
    o.resize(out_elems);
    l.resize(rows);
    std::vector<uint16_t> bits(out_elems);
    std::vector<float> f32(out_elems), lse32(rows);
    for (int64_t e = 0; e < out_elems; ++e) {
      o[e] = round_to(rng.normal(), s.partial_dtype);
      if (s.partial_dtype == FLASHPLUS_DTYPE_FLOAT32) f32[e] = static_cast<float>(o[e]);
      else bits[e] = to_bits(static_cast<float>(o[e]), s.partial_dtype);
    }
    for (int64_t r = 0; r < rows; ++r) {
      // Some partials saw no key: +inf or -inf, never counted.
      const int kind = rng.integer(0, 9);
      l[r] = kind == 0 ? std::numeric_limits<double>::infinity()
             : kind == 1 ? -std::numeric_limits<double>::infinity()
                         : static_cast<float>(rng.uniform(-20, 20));
      lse32[r] = static_cast<float>(l[r]);
    }
    out_buffers.push_back(s.partial_dtype == FLASHPLUS_DTYPE_FLOAT32 ? DeviceBuffer::from(f32) : DeviceBuffer::from(bits));
    lse_buffers.push_back(DeviceBuffer::from(lse32));
    out_tensors.push_back(tensor(out_buffers.back().data(), s.partial_dtype, FLASHPLUS_DEVICE_CUDA,
                                 {s.batch, s.seqlen, s.heads, s.head_dim}));
    lse_tensors.push_back(tensor(lse_buffers.back().data(), FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DEVICE_CUDA,
                                 {s.batch, s.heads, s.seqlen}));
  }
  // Rows where every partial is empty.
  for (int p = 0; p < s.partials; ++p) lse_values[p][5] = -std::numeric_limits<double>::infinity();

  DeviceBuffer own_out(out_elems * 4), own_lse(rows * 4);
  own_out.fill_bytes(0xFF);
  own_lse.fill_bytes(0xFF);
  {  // re-upload partial LSEs with the all-empty row
    for (int p = 0; p < s.partials; ++p) {
      std::vector<float> lse32(rows);
      for (int64_t r = 0; r < rows; ++r) lse32[r] = static_cast<float>(lse_values[p][r]);
      lse_buffers[p].upload(lse32.data(), rows * 4);
    }
  }
  flashplus_combine_args a;
  flashplus_combine_args_init(&a);
  a.num_partials = s.partials;
  a.out_partials = out_tensors.data();
  a.lse_partials = lse_tensors.data();
  a.out = s.alias_partial0 ? out_tensors[0]
                           : tensor(own_out.data(), s.out_dtype, FLASHPLUS_DEVICE_CUDA, {s.batch, s.seqlen, s.heads, s.head_dim});
  a.lse = s.alias_partial0 ? lse_tensors[0]
                           : tensor(own_lse.data(), FLASHPLUS_DTYPE_FLOAT32, FLASHPLUS_DEVICE_CUDA, {s.batch, s.heads, s.seqlen});
  const flashplus_status status = flashplus_combine(&a);
  ASSERT_EQ(status, FLASHPLUS_STATUS_OK) << flashplus_last_error();
  device_synchronize();

  std::vector<double> got(out_elems);
  std::vector<float> got_lse(rows);
  const flashplus_dtype out_dtype = s.alias_partial0 ? s.partial_dtype : s.out_dtype;
  const DeviceBuffer& out_buf = s.alias_partial0 ? out_buffers[0] : own_out;
  if (out_dtype == FLASHPLUS_DTYPE_FLOAT32) {
    auto v = out_buf.to_host<float>(out_elems);
    for (int64_t e = 0; e < out_elems; ++e) got[e] = v[e];
  } else {
    auto v = out_buf.to_host<uint16_t>(out_elems);
    for (int64_t e = 0; e < out_elems; ++e) got[e] = from_bits(v[e], out_dtype);
  }
  (s.alias_partial0 ? lse_buffers[0] : own_lse).download(got_lse.data(), rows * 4);

  double worst = 0, worst_lse = 0;
  int64_t lse_inf_errors = 0;
  for (int b = 0; b < s.batch; ++b)
    for (int t = 0; t < s.seqlen; ++t)
      for (int h = 0; h < s.heads; ++h) {
        const int64_t stat = (static_cast<int64_t>(b) * s.heads + h) * s.seqlen + t;
        double m = -std::numeric_limits<double>::infinity();
        for (int p = 0; p < s.partials; ++p)
          if (std::isfinite(lse_values[p][stat])) m = std::max(m, lse_values[p][stat]);
        double lse = std::numeric_limits<double>::infinity();
        if (std::isfinite(m)) {
          double sum = 0;
          for (int p = 0; p < s.partials; ++p)
            if (std::isfinite(lse_values[p][stat])) sum += std::exp(lse_values[p][stat] - m);
          lse = m + std::log(sum);
        }
        if (std::isinf(lse)) {
          if (got_lse[stat] != lse) ++lse_inf_errors;
        } else {
          worst_lse = std::max(worst_lse, std::fabs(got_lse[stat] - lse));
        }
        const int64_t row = ((static_cast<int64_t>(b) * s.seqlen + t) * s.heads + h) * s.head_dim;
        for (int f = 0; f < s.head_dim; ++f) {
          double expected = 0;
          if (std::isfinite(lse))
            for (int p = 0; p < s.partials; ++p)
              if (std::isfinite(lse_values[p][stat])) expected += std::exp(lse_values[p][stat] - lse) * out_values[p][row + f];
          const double err = std::fabs(got[row + f] - expected);
          worst = std::isnan(err) ? std::numeric_limits<double>::infinity() : std::max(worst, err);
        }
      }
  const double tol = out_dtype == FLASHPLUS_DTYPE_FLOAT32 ? 2e-5 : out_dtype == FLASHPLUS_DTYPE_BFLOAT16 ? 2e-2 : 3e-3;
  EXPECT_LE(worst, tol) << "combined out";
  EXPECT_LE(worst_lse, 1e-4) << "combined lse";
  EXPECT_EQ(lse_inf_errors, 0) << "rows with no contributing partial must give lse = +inf";
}

TEST(CudaCombine, SmallThreeFp32) { check_combine({}); }
TEST(CudaCombine, SmallAliasPartial0) { check_combine({.partials = 4, .alias_partial0 = true}); }
TEST(CudaCombine, Bf16PartialsToFp16Out) {
  check_combine({.partials = 5, .head_dim = 128, .partial_dtype = FLASHPLUS_DTYPE_BFLOAT16, .out_dtype = FLASHPLUS_DTYPE_FLOAT16});
}
TEST(CudaCombine, FortyPartialsChunked) { check_combine({.partials = 40, .batch = 1, .seqlen = 9, .head_dim = 33}); }
TEST(CudaCombine, SeventyPartialsChunkedAliased) {
  check_combine({.partials = 70, .batch = 1, .seqlen = 4, .heads = 2, .head_dim = 256, .alias_partial0 = true});
}

}  // namespace
}  // namespace fpcuda
