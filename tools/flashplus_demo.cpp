// flashplus_demo.cpp — the main job: run attention on the best backend present (CUDA if compiled
// and a GPU is there, else CPU), check it against an fp64 reference on sampled rows, and print the
// shape, forward and backward times, TFLOP/s (flash-attn's FLOP count) and the max errors.
//
// Only the public C ABI is used, as a C++ user would. The reference here is a plain per-row fp64
// loop written for this program; it shares nothing with the backends.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "flashplus/flashplus.h"

#if defined(FLASHPLUS_DEMO_CUDA)
#include <cuda_runtime.h>
#endif

namespace {

struct Options {
  std::string device = "auto";
  int64_t batch = 0, seqlen = 0, heads = 0, head_dim = 0;
  bool causal = true;
  int iters = 0;
};

uint16_t to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}
float from_bf16(uint16_t b) {
  const uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

flashplus_tensor make_tensor(void* data, int32_t dtype, int32_t device, std::vector<int64_t> sizes) {
  flashplus_tensor t{};
  t.data = data;
  t.dtype = dtype;
  t.device_type = device;
  t.ndim = static_cast<int32_t>(sizes.size());
  int64_t stride = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    t.sizes[i] = sizes[i];
    t.strides[i] = stride;
    stride *= sizes[i];
  }
  return t;
}

bool check(flashplus_status status, const char* what) {
  if (status == FLASHPLUS_STATUS_OK) return true;
  std::fprintf(stderr, "%s failed: %s: %s\n", what, flashplus_status_name(status), flashplus_last_error());
  return false;
}

// Memory on the chosen device; host vectors are copied in and out.
class Buffer {
 public:
  Buffer(size_t bytes, bool on_gpu) : bytes_(bytes), on_gpu_(on_gpu) {
#if defined(FLASHPLUS_DEMO_CUDA)
    if (on_gpu_) {
      if (cudaMalloc(&ptr_, bytes) != cudaSuccess) { std::fprintf(stderr, "cudaMalloc failed\n"); std::exit(1); }
      return;
    }
#endif
    host_.resize(bytes);
    ptr_ = host_.data();
  }
  ~Buffer() {
#if defined(FLASHPLUS_DEMO_CUDA)
    if (on_gpu_) cudaFree(ptr_);
#endif
  }
  void* get() { return ptr_; }
  void upload(const void* src) {
#if defined(FLASHPLUS_DEMO_CUDA)
    if (on_gpu_) { cudaMemcpy(ptr_, src, bytes_, cudaMemcpyHostToDevice); return; }
#endif
    std::memcpy(ptr_, src, bytes_);
  }
  void download(void* dst) {
#if defined(FLASHPLUS_DEMO_CUDA)
    if (on_gpu_) { cudaMemcpy(dst, ptr_, bytes_, cudaMemcpyDeviceToHost); return; }
#endif
    std::memcpy(dst, ptr_, bytes_);
  }
  void poison() {
#if defined(FLASHPLUS_DEMO_CUDA)
    if (on_gpu_) { cudaMemset(ptr_, 0xFF, bytes_); return; }
#endif
    std::memset(ptr_, 0xFF, bytes_);
  }

 private:
  size_t bytes_;
  bool on_gpu_;
  void* ptr_ = nullptr;
  std::vector<unsigned char> host_;
};

void synchronize(bool on_gpu) {
#if defined(FLASHPLUS_DEMO_CUDA)
  if (on_gpu) cudaDeviceSynchronize();
#else
  (void)on_gpu;
#endif
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--device") o.device = value();
    else if (a == "--batch") o.batch = std::atoll(value().c_str());
    else if (a == "--seqlen") o.seqlen = std::atoll(value().c_str());
    else if (a == "--heads") o.heads = std::atoll(value().c_str());
    else if (a == "--head-dim") o.head_dim = std::atoll(value().c_str());
    else if (a == "--iters") o.iters = std::atoi(value().c_str());
    else if (a == "--no-causal") o.causal = false;
    else {
      std::printf("usage: flashplus-demo [--device auto|cpu|cuda] [--batch B] [--seqlen S] [--heads H]\n"
                  "                      [--head-dim D] [--iters N] [--no-causal]\n");
      std::exit(a == "--help" ? 0 : 2);
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse(argc, argv);
  const bool cuda_usable = flashplus_backend_status(FLASHPLUS_DEVICE_CUDA, 0) == FLASHPLUS_STATUS_OK;
  const std::string cuda_reason = flashplus_last_error();
  bool on_gpu = opt.device == "cuda" || (opt.device == "auto" && cuda_usable);
#if !defined(FLASHPLUS_DEMO_CUDA)
  if (on_gpu) {
    std::fprintf(stderr, "this demo was built without CUDA; use --device cpu\n");
    return 2;
  }
#endif
  std::printf("flashplus %s demo\n", flashplus_version());
  if (!on_gpu) std::printf("backend: cpu (CUDA: %s)\n", cuda_usable ? "available, not chosen" : cuda_reason.c_str());
  else std::printf("backend: cuda\n");

  // Defaults sized so the CPU run takes about a second and the GPU run fills the chip.
  const int64_t b = opt.batch ? opt.batch : (on_gpu ? 4 : 1);
  const int64_t s = opt.seqlen ? opt.seqlen : (on_gpu ? 4096 : 1024);
  const int64_t h = opt.heads ? opt.heads : (on_gpu ? 16 : 8);
  const int64_t d = opt.head_dim ? opt.head_dim : (on_gpu ? 128 : 64);
  const int iters = opt.iters ? opt.iters : (on_gpu ? 20 : 2);
  const int32_t dtype = FLASHPLUS_DTYPE_BFLOAT16;
  const int32_t device = on_gpu ? FLASHPLUS_DEVICE_CUDA : FLASHPLUS_DEVICE_CPU;
  std::printf("shape: q, k, v (b=%lld, s=%lld, h=%lld, d=%lld) bfloat16, causal=%s\n", (long long)b, (long long)s,
              (long long)h, (long long)d, opt.causal ? "true" : "false");

  const size_t elems = static_cast<size_t>(b * s * h * d);
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<uint16_t> hq(elems), hk(elems), hv(elems), hdo(elems);
  for (auto* vec : {&hq, &hk, &hv, &hdo})
    for (auto& x : *vec) x = to_bf16(normal(rng));

  Buffer q(elems * 2, on_gpu), k(elems * 2, on_gpu), v(elems * 2, on_gpu), dout(elems * 2, on_gpu);
  Buffer out(elems * 2, on_gpu), dq(elems * 2, on_gpu), dk(elems * 2, on_gpu), dv(elems * 2, on_gpu);
  Buffer lse(static_cast<size_t>(b * h * s) * 4, on_gpu), dsum(static_cast<size_t>(b * h * s) * 4, on_gpu);
  q.upload(hq.data());
  k.upload(hk.data());
  v.upload(hv.data());
  dout.upload(hdo.data());
  out.poison();
  dq.poison();

  const float scale = 1.f / std::sqrt(static_cast<float>(d));
  flashplus_fwd_args fa;
  flashplus_fwd_args_init(&fa);
  fa.q = make_tensor(q.get(), dtype, device, {b, s, h, d});
  fa.k = make_tensor(k.get(), dtype, device, {b, s, h, d});
  fa.v = make_tensor(v.get(), dtype, device, {b, s, h, d});
  fa.out = make_tensor(out.get(), dtype, device, {b, s, h, d});
  fa.softmax_lse = make_tensor(lse.get(), FLASHPLUS_DTYPE_FLOAT32, device, {b, h, s});
  fa.softmax_scale = scale;
  fa.is_causal = opt.causal;

  flashplus_bwd_args ba;
  flashplus_bwd_args_init(&ba);
  ba.q = fa.q; ba.k = fa.k; ba.v = fa.v; ba.out = fa.out; ba.softmax_lse = fa.softmax_lse;
  ba.dout = make_tensor(dout.get(), dtype, device, {b, s, h, d});
  ba.dq = make_tensor(dq.get(), dtype, device, {b, s, h, d});
  ba.dk = make_tensor(dk.get(), dtype, device, {b, s, h, d});
  ba.dv = make_tensor(dv.get(), dtype, device, {b, s, h, d});
  ba.softmax_d = make_tensor(dsum.get(), FLASHPLUS_DTYPE_FLOAT32, device, {b, h, s});
  ba.softmax_scale = scale;
  ba.is_causal = opt.causal;

  using clock = std::chrono::steady_clock;
  auto time_ms = [&](auto&& call) {
    std::vector<double> times;
    for (int i = 0; i < iters + 1; ++i) {  // the first run is a warm-up
      synchronize(on_gpu);
      const auto t0 = clock::now();
      if (!call()) std::exit(1);
      synchronize(on_gpu);
      if (i > 0) times.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  };
  const double fwd_ms = time_ms([&] { return check(flashplus_fwd(&fa), "flashplus_fwd"); });
  const bool bwd_supported = flashplus_bwd(&ba) == FLASHPLUS_STATUS_OK;
  const std::string bwd_reason = flashplus_last_error();
  const double bwd_ms = bwd_supported ? time_ms([&] { return check(flashplus_bwd(&ba), "flashplus_bwd"); }) : 0.0;

  std::vector<uint16_t> hout(elems), hdq(elems);
  std::vector<float> hlse(static_cast<size_t>(b * h * s));
  out.download(hout.data());
  lse.download(hlse.data());
  if (bwd_supported) dq.download(hdq.data());

  // fp64 reference on sampled rows: out, lse, and dq (which needs only the row's P and dS).
  auto at = [&](const std::vector<uint16_t>& t, int64_t bi, int64_t si, int64_t hi, int64_t x) {
    return static_cast<double>(from_bf16(t[((bi * s + si) * h + hi) * d + x]));
  };
  double err_out = 0, err_lse = 0, err_dq = 0, scale_out = 0, scale_dq = 0;
  std::uniform_int_distribution<int64_t> pick_row(0, s - 1);
  const int samples = 16;
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t hi = 0; hi < h; ++hi)
      for (int n = 0; n < samples; ++n) {
        const int64_t r = n == 0 ? s - 1 : pick_row(rng);
        const int64_t visible = opt.causal ? r + 1 : s;
        std::vector<double> logits(visible), o(d, 0.0), dq_ref(d, 0.0);
        double mx = -INFINITY;
        for (int64_t j = 0; j < visible; ++j) {
          double dot = 0;
          for (int64_t x = 0; x < d; ++x) dot += at(hq, bi, r, hi, x) * at(hk, bi, j, hi, x);
          logits[j] = dot * scale;
          mx = std::max(mx, logits[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < visible; ++j) sum += std::exp(logits[j] - mx);
        for (int64_t j = 0; j < visible; ++j)
          for (int64_t x = 0; x < d; ++x) o[x] += std::exp(logits[j] - mx) / sum * at(hv, bi, j, hi, x);
        const double lse_ref = mx + std::log(sum);
        err_lse = std::max(err_lse, std::abs(lse_ref - hlse[(bi * h + hi) * s + r]));
        double rowsum = 0;
        for (int64_t x = 0; x < d; ++x) {
          err_out = std::max(err_out, std::abs(o[x] - at(hout, bi, r, hi, x)));
          scale_out = std::max(scale_out, std::abs(o[x]));
          rowsum += at(hdo, bi, r, hi, x) * o[x];
        }
        if (!bwd_supported) continue;
        for (int64_t j = 0; j < visible; ++j) {
          double dp = 0;
          for (int64_t x = 0; x < d; ++x) dp += at(hdo, bi, r, hi, x) * at(hv, bi, j, hi, x);
          const double ds = std::exp(logits[j] - lse_ref) * (dp - rowsum);
          for (int64_t x = 0; x < d; ++x) dq_ref[x] += ds * scale * at(hk, bi, j, hi, x);
        }
        for (int64_t x = 0; x < d; ++x) {
          err_dq = std::max(err_dq, std::abs(dq_ref[x] - at(hdq, bi, r, hi, x)));
          scale_dq = std::max(scale_dq, std::abs(dq_ref[x]));
        }
      }

  // FLOPs as flash-attn counts them: 4 * b * h * s_q * s_k * d, halved for causal; backward 2.5x.
  const double flops = 4.0 * b * h * s * s * d / (opt.causal ? 2.0 : 1.0);
  std::printf("forward : %9.3f ms  %8.3f TFLOP/s\n", fwd_ms, flops / (fwd_ms * 1e-3) / 1e12);
  if (bwd_supported)
    std::printf("backward: %9.3f ms  %8.3f TFLOP/s\n", bwd_ms, 2.5 * flops / (bwd_ms * 1e-3) / 1e12);
  else
    std::printf("backward: not run on this backend (%s)\n", bwd_reason.c_str());
  std::printf("max error vs fp64 (%d sampled rows per head): out %.3e (max |out| %.3f), lse %.3e", samples, err_out,
              scale_out, err_lse);
  if (bwd_supported) std::printf(", dq %.3e (max |dq| %.3f)", err_dq, scale_dq);
  std::printf("\n");
  // bf16 inputs and outputs: the output is rounded to 8 mantissa bits, so allow a few bf16 ulps.
  const bool ok = err_out <= 2e-2 * std::max(1.0, scale_out) && err_lse <= 1e-2 &&
                  (!bwd_supported || err_dq <= 3e-2 * std::max(1.0, scale_dq));
  std::printf("check: %s\n", ok ? "PASSED" : "FAILED");
  return ok ? 0 : 1;
}
