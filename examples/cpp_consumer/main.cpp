// main.cpp — the smallest useful flashplus program: causal attention of one fp32 sequence on the
// CPU backend through the C ABI, with the error path shown.
#include <cmath>
#include <cstdio>
#include <vector>

#include <flashplus/flashplus.h>

static flashplus_tensor cpu_fp32(float* data, std::vector<int64_t> sizes) {
  flashplus_tensor t{};
  t.data = data;
  t.dtype = FLASHPLUS_DTYPE_FLOAT32;
  t.device_type = FLASHPLUS_DEVICE_CPU;
  t.ndim = static_cast<int32_t>(sizes.size());
  int64_t stride = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    t.sizes[i] = sizes[i];
    t.strides[i] = stride;
    stride *= sizes[i];
  }
  return t;
}

int main() {
  const int64_t b = 1, s = 5, h = 2, d = 4;
  std::vector<float> q(b * s * h * d), k(q.size()), v(q.size()), out(q.size()), lse(b * h * s);
  for (size_t i = 0; i < q.size(); ++i) {
    q[i] = std::sin(0.3f * i);
    k[i] = std::cos(0.7f * i);
    v[i] = 0.01f * static_cast<float>(i);
  }
  flashplus_fwd_args args;
  flashplus_fwd_args_init(&args);
  args.q = cpu_fp32(q.data(), {b, s, h, d});    // (b, s_q, h_q, d)
  args.k = cpu_fp32(k.data(), {b, s, h, d});    // (b, s_k, h_k, d)
  args.v = cpu_fp32(v.data(), {b, s, h, d});
  args.out = cpu_fp32(out.data(), {b, s, h, d});
  args.softmax_lse = cpu_fp32(lse.data(), {b, h, s});  // fp32 (b, h_q, s_q)
  args.softmax_scale = 0.5f;
  args.is_causal = 1;
  if (flashplus_fwd(&args) != FLASHPLUS_STATUS_OK) {
    std::fprintf(stderr, "flashplus_fwd: %s\n", flashplus_last_error());
    return 1;
  }
  // Row 0 of a causal attention sees only key 0, so its output is v[0].
  const bool row0_ok = std::fabs(out[0] - v[0]) < 1e-6f;
  std::printf("flashplus %s: out[0, 0, 0, :] = %.4f %.4f %.4f %.4f (%s)\n", flashplus_version(), out[0], out[1],
              out[2], out[3], row0_ok ? "ok" : "WRONG");

  args.softmax_scale = NAN;  // a bad argument comes back as a status and a message, never a crash
  const flashplus_status status = flashplus_fwd(&args);
  std::printf("bad softmax_scale -> %s: %s\n", flashplus_status_name(status), flashplus_last_error());
  return row0_ok && status == FLASHPLUS_STATUS_INVALID_ARGUMENT ? 0 : 1;
}
