// FLASHPLUS_FLAG_DRY_RUN validates without touching tensor memory: every data pointer here points
// into a PROT_NONE range, so any read or write kills the test. Index tensors (whose contents are
// only checked by real calls) are left out.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <vector>

#include "flashplus/flashplus.h"
#include "support/host_tensor.h"
#include "support/validation_rule.h"

namespace {

// A reserved PROT_NONE address range handed out in disjoint pieces: tensors must not overlap
// (the library refuses outputs that overlap inputs), and no piece may be read or written.
class ForbiddenRegion {
 public:
  ForbiddenRegion() {
    base_ = mmap(nullptr, kBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  }
  ~ForbiddenRegion() {
    if (base_ != MAP_FAILED) munmap(base_, kBytes);
  }
  bool ok() const { return base_ != MAP_FAILED; }

  // A contiguous descriptor of its own disjoint piece of the region.
  flashplus_tensor tensor(flashplus_dtype dtype, std::vector<int64_t> sizes) {
    flashplus_tensor t{};
    t.dtype = dtype;
    t.device_type = FLASHPLUS_DEVICE_CPU;
    t.ndim = static_cast<int32_t>(sizes.size());
    int64_t stride = 1;
    for (int dim = t.ndim - 1; dim >= 0; --dim) {
      t.sizes[dim] = sizes[dim];
      t.strides[dim] = stride;
      stride *= sizes[dim];
    }
    const size_t bytes = static_cast<size_t>(stride) * 4;  // room for any dtype
    t.data = static_cast<unsigned char*>(base_) + used_;
    used_ += (bytes + 4095) / 4096 * 4096;
    if (used_ > kBytes) t.data = nullptr;  // the test then fails on the null argument
    return t;
  }

 private:
  static constexpr size_t kBytes = size_t{1} << 30;
  void* base_ = MAP_FAILED;
  size_t used_ = 0;
};

constexpr flashplus_dtype kHalf = FLASHPLUS_DTYPE_FLOAT16;
constexpr flashplus_dtype kFloat = FLASHPLUS_DTYPE_FLOAT32;

TEST(DryRun, ForwardTouchesNoMemory) {
  ForbiddenRegion region;
  ASSERT_TRUE(region.ok());
  flashplus_fwd_args a;
  flashplus_fwd_args_init(&a);
  a.flags = FLASHPLUS_FLAG_DRY_RUN;
  a.q = region.tensor(kHalf, {2, 64, 8, 128});
  a.k = region.tensor(kHalf, {2, 96, 2, 128});
  a.v = region.tensor(kHalf, {2, 96, 2, 128});
  a.out = region.tensor(kHalf, {2, 64, 8, 128});
  a.softmax_lse = region.tensor(kFloat, {2, 8, 64});
  a.s_dmask = region.tensor(kFloat, {2, 8, 64, 96});
  a.alibi_slopes = region.tensor(kFloat, {2, 8});
  a.softmax_scale = 0.1f;
  a.softcap = 5.f;
  a.is_causal = 1;
  a.dropout_p = 0.1f;
  EXPECT_EQ(flashplus_fwd(&a), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  // A shape error is still found, and still without touching memory.
  a.out.sizes[1] = 63;
  EXPECT_EQ(flashplus_fwd(&a), FLASHPLUS_STATUS_INVALID_ARGUMENT);
}

TEST(DryRun, BackwardTouchesNoMemory) {
  ForbiddenRegion region;
  ASSERT_TRUE(region.ok());
  flashplus_bwd_args a;
  flashplus_bwd_args_init(&a);
  a.flags = FLASHPLUS_FLAG_DRY_RUN;
  for (flashplus_tensor* t : {&a.q, &a.dout, &a.out, &a.dq}) *t = region.tensor(kHalf, {2, 33, 6, 72});
  for (flashplus_tensor* t : {&a.k, &a.v, &a.dk, &a.dv}) *t = region.tensor(kHalf, {2, 47, 3, 72});
  a.softmax_lse = region.tensor(kFloat, {2, 6, 33});
  a.softmax_d = region.tensor(kFloat, {2, 6, 33});
  a.alibi_slopes = region.tensor(kFloat, {6});
  a.softmax_scale = 0.2f;
  a.window_left = 4;
  a.window_right = 2;
  a.deterministic = 1;
  EXPECT_EQ(flashplus_bwd(&a), FLASHPLUS_STATUS_OK) << flashplus_last_error();
}

TEST(DryRun, KvcacheTouchesNoMemory) {
  ForbiddenRegion region;
  ASSERT_TRUE(region.ok());
  flashplus_kvcache_args a;
  flashplus_kvcache_args_init(&a);
  a.flags = FLASHPLUS_FLAG_DRY_RUN;
  a.q = region.tensor(kHalf, {3, 1, 8, 128});
  a.out = region.tensor(kHalf, {3, 1, 8, 128});
  a.k_cache = region.tensor(kHalf, {3, 256, 2, 128});
  a.v_cache = region.tensor(kHalf, {3, 256, 2, 128});
  a.alibi_slopes = region.tensor(kFloat, {3, 8});
  a.softmax_lse = region.tensor(kFloat, {3, 8, 1});
  a.softmax_scale = 0.1f;
  a.num_splits = 4;
  EXPECT_EQ(flashplus_fwd_kvcache(&a), FLASHPLUS_STATUS_OK) << flashplus_last_error();
}

TEST(DryRun, CombineTouchesNoMemory) {
  ForbiddenRegion region;
  ASSERT_TRUE(region.ok());
  std::vector<flashplus_tensor> outs, lses;
  for (int p = 0; p < 3; ++p) {
    outs.push_back(region.tensor(kFloat, {2, 5, 4, 64}));
    lses.push_back(region.tensor(kFloat, {2, 4, 5}));
  }
  flashplus_combine_args a;
  flashplus_combine_args_init(&a);
  a.flags = FLASHPLUS_FLAG_DRY_RUN;
  a.num_partials = 3;
  a.out_partials = outs.data();
  a.lse_partials = lses.data();
  a.out = region.tensor(kHalf, {2, 5, 4, 64});
  a.lse = region.tensor(kFloat, {2, 4, 5});
  EXPECT_EQ(flashplus_combine(&a), FLASHPLUS_STATUS_OK) << flashplus_last_error();
}

TEST(DryRun, CudaTensorsReportNotCompiled) {
  if (fptest::cuda_compiled()) GTEST_SKIP() << "the CUDA backend is compiled in";
  ForbiddenRegion region;
  ASSERT_TRUE(region.ok());
  flashplus_fwd_args a;
  flashplus_fwd_args_init(&a);
  a.flags = FLASHPLUS_FLAG_DRY_RUN;
  for (flashplus_tensor* t : {&a.q, &a.out, &a.k, &a.v}) *t = region.tensor(kHalf, {1, 16, 2, 64});
  a.softmax_lse = region.tensor(kFloat, {1, 2, 16});
  for (flashplus_tensor* t : {&a.q, &a.k, &a.v, &a.out, &a.softmax_lse}) fptest::claim_cuda(*t);
  a.softmax_scale = 0.125f;
  EXPECT_EQ(flashplus_fwd(&a), FLASHPLUS_STATUS_NOT_COMPILED) << flashplus_last_error();
}

TEST(DryRun, WritesNothingOnRealMemory) {
  fptest::HostTensor q = fptest::HostTensor::contiguous(kHalf, {1, 4, 2, 8});
  fptest::HostTensor out = fptest::HostTensor::contiguous(kHalf, {1, 4, 2, 8});
  fptest::HostTensor lse = fptest::HostTensor::contiguous(kFloat, {1, 2, 4});
  fptest::Rng rng(1);
  q.fill_normal(rng);
  out.poison();
  lse.poison();
  flashplus_fwd_args a;
  flashplus_fwd_args_init(&a);
  a.flags = FLASHPLUS_FLAG_DRY_RUN;
  a.q = a.k = a.v = q.abi();
  a.out = out.abi();
  a.softmax_lse = lse.abi();
  a.softmax_scale = 0.3f;
  ASSERT_EQ(flashplus_fwd(&a), FLASHPLUS_STATUS_OK) << flashplus_last_error();
  EXPECT_EQ(out.elements_written_outside_view(), 0);
  for (unsigned char byte : out.storage_bytes()) ASSERT_EQ(byte, 0xFF);
  for (unsigned char byte : lse.storage_bytes()) ASSERT_EQ(byte, 0xFF);
}

}  // namespace
