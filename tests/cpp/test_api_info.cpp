// The informational entry points: version, ABI version, status names, backend status, build
// info JSON, and the *_args_init defaults the header promises.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>

#include "flashplus/flashplus.h"

namespace {

TEST(ApiInfo, VersionAndAbi) {
  EXPECT_STREQ(flashplus_version(), "0.1.0");
  EXPECT_EQ(flashplus_abi_version(), static_cast<uint32_t>(FLASHPLUS_ABI_VERSION));
}

TEST(ApiInfo, EveryStatusHasADistinctName) {
  std::vector<std::string> names;
  for (int s = FLASHPLUS_STATUS_OK; s <= FLASHPLUS_STATUS_INTERNAL_ERROR; ++s) {
    const char* name = flashplus_status_name(static_cast<flashplus_status>(s));
    ASSERT_NE(name, nullptr);
    EXPECT_GT(std::strlen(name), 0u);
    for (const std::string& other : names) EXPECT_NE(other, name);
    names.push_back(name);
  }
  EXPECT_NE(flashplus_status_name(static_cast<flashplus_status>(12345)), nullptr);
}

TEST(ApiInfo, BackendStatus) {
  EXPECT_EQ(flashplus_backend_status(FLASHPLUS_DEVICE_CPU, 0), FLASHPLUS_STATUS_OK);
  const flashplus_status cuda = flashplus_backend_status(FLASHPLUS_DEVICE_CUDA, 0);
  EXPECT_TRUE(cuda == FLASHPLUS_STATUS_OK || cuda == FLASHPLUS_STATUS_NOT_COMPILED ||
              cuda == FLASHPLUS_STATUS_DEVICE_ERROR);
  if (cuda != FLASHPLUS_STATUS_OK) {
    EXPECT_STRNE(flashplus_last_error(), "");
  }
  EXPECT_NE(flashplus_backend_status(77, 0), FLASHPLUS_STATUS_OK);
}

TEST(ApiInfo, BuildInfoJsonHasTheDocumentedKeys) {
  const char* json = flashplus_build_info_json();
  ASSERT_NE(json, nullptr);
  const std::string text = json;
  for (const char* key : {"\"version\"", "\"abi\"", "\"backends\"", "\"cpu\"", "\"cuda\"",
                          "\"compiled\"", "\"preset\""})
    EXPECT_NE(text.find(key), std::string::npos) << key << " missing from " << text;
  EXPECT_EQ(text.front(), '{');
  EXPECT_EQ(text.back(), '}');
  EXPECT_EQ(flashplus_build_info_json(), json) << "static storage: the same pointer every call";
}

TEST(ApiInfo, LastErrorIsPerThread) {
  // A failure on one thread must not show up as (or clear) another thread's last error.
  EXPECT_EQ(flashplus_fwd(nullptr), FLASHPLUS_STATUS_INVALID_ARGUMENT);
  const std::string mine = flashplus_last_error();
  ASSERT_FALSE(mine.empty());
  std::string other_before, other_after;
  std::thread other([&] {
    other_before = flashplus_last_error();
    flashplus_combine_args args;
    flashplus_combine_args_init(&args);  // num_partials 0: refused
    flashplus_combine(&args);
    other_after = flashplus_last_error();
  });
  other.join();
  EXPECT_EQ(other_before, "");
  EXPECT_FALSE(other_after.empty());
  EXPECT_NE(other_after, mine);
  EXPECT_EQ(flashplus_last_error(), mine);
}

TEST(ApiInfo, ArgsInitSetsSizeAndDefaults) {
  flashplus_fwd_args fwd;
  std::memset(&fwd, 0xAB, sizeof fwd);
  flashplus_fwd_args_init(&fwd);
  EXPECT_EQ(fwd.struct_size, sizeof(flashplus_fwd_args));
  EXPECT_EQ(fwd.window_left, -1);
  EXPECT_EQ(fwd.window_right, -1);
  EXPECT_EQ(fwd.num_splits, 0);
  EXPECT_EQ(fwd.flags, 0u);
  EXPECT_EQ(fwd.q.data, nullptr);
  EXPECT_EQ(fwd.s_dmask.data, nullptr);
  EXPECT_EQ(fwd.dropout_p, 0.f);
  EXPECT_EQ(fwd.softcap, 0.f);
  EXPECT_EQ(fwd.is_causal, 0);

  flashplus_bwd_args bwd;
  std::memset(&bwd, 0xAB, sizeof bwd);
  flashplus_bwd_args_init(&bwd);
  EXPECT_EQ(bwd.struct_size, sizeof(flashplus_bwd_args));
  EXPECT_EQ(bwd.window_left, -1);
  EXPECT_EQ(bwd.window_right, -1);
  EXPECT_EQ(bwd.cu_seqlens_q.data, nullptr);
  EXPECT_EQ(bwd.deterministic, 0);

  flashplus_kvcache_args kv;
  std::memset(&kv, 0xAB, sizeof kv);
  flashplus_kvcache_args_init(&kv);
  EXPECT_EQ(kv.struct_size, sizeof(flashplus_kvcache_args));
  EXPECT_EQ(kv.window_left, -1);
  EXPECT_EQ(kv.window_right, -1);
  EXPECT_EQ(kv.num_splits, 0);
  EXPECT_EQ(kv.k_new.data, nullptr);
  EXPECT_EQ(kv.cache_seqlens.data, nullptr);

  flashplus_combine_args combine;
  std::memset(&combine, 0xAB, sizeof combine);
  flashplus_combine_args_init(&combine);
  EXPECT_EQ(combine.struct_size, sizeof(flashplus_combine_args));
  EXPECT_EQ(combine.out_partials, nullptr);
  EXPECT_EQ(combine.lse.data, nullptr);
}

}  // namespace
