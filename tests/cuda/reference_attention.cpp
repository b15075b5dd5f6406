// reference_attention.cpp — see reference_attention.h. Work is split in (sequence, head, 16 rows)
// tasks spread over the host's cores: the large cases (4097 x 4097) would otherwise dominate the
// suite's time.
#include "reference_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <thread>

#include "cuda_test_support.h"

namespace fpcuda {
namespace {

struct RowTask {
  int seq, head, row_begin, row_end;
};

// (sequence, head, 16-row block) tasks, so that one long single-head sequence still uses every core.
std::vector<RowTask> row_tasks(const AttentionInputs& in) {
  std::vector<RowTask> tasks;
  for (int seq = 0; seq < static_cast<int>(in.s_q.size()); ++seq)
    for (int h = 0; h < in.h_q; ++h)
      for (int i = 0; i < in.s_q[seq]; i += 16) tasks.push_back({seq, h, i, std::min(in.s_q[seq], i + 16)});
  return tasks;
}

template <typename Work>
void parallel_for(int count, Work work) {
  const int workers = std::max(1, std::min<int>(count, static_cast<int>(std::thread::hardware_concurrency())));
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&]() {
      for (int task = next++; task < count; task = next++) work(task);
    });
  for (auto& t : threads) t.join();
}

double logit(const AttentionInputs& in, int seq, int h, int i, int j, double dot) {
  double x = dot * in.scale;
  if (in.softcap > 0) x = in.softcap * std::tanh(x / in.softcap);
  if (!in.slopes.empty()) {
    const double slope = in.slopes[static_cast<size_t>(seq) * in.h_q + h];
    x -= slope * std::fabs(static_cast<double>(i + in.s_k[seq] - in.s_q[seq] - j));
  }
  return x;
}

AttentionOutputs allocate(const AttentionInputs& in) {
  AttentionOutputs o;
  const size_t n = in.s_q.size();
  o.out.resize(n);
  o.lse.resize(n);
  o.probs.resize(n);
  for (size_t s = 0; s < n; ++s) {
    o.out[s].assign(static_cast<size_t>(in.s_q[s]) * in.h_q * in.head_dim, 0.0);
    o.lse[s].assign(static_cast<size_t>(in.h_q) * in.s_q[s], 0.0);
    o.probs[s].assign(static_cast<size_t>(in.h_q) * in.s_q[s] * in.s_k[s], 0.0);
  }
  return o;
}

bool kept(const AttentionInputs& in, int seq, int h, int i, int j) {
  if (in.keep.empty()) return true;
  return in.keep[seq][(static_cast<size_t>(h) * in.s_q[seq] + i) * in.s_k[seq] + j] != 0;
}

}  // namespace

bool key_visible(const AttentionInputs& in, int seq, int i, int j) {
  const int diagonal = i + in.s_k[seq] - in.s_q[seq];
  if (j < 0 || j >= in.s_k[seq]) return false;
  if (in.window_right >= 0 && j > diagonal + in.window_right) return false;
  if (in.window_left >= 0 && j < diagonal - in.window_left) return false;
  return true;
}

AttentionOutputs reference_fp64(const AttentionInputs& in) {
  AttentionOutputs o = allocate(in);
  const int d = in.head_dim, group = in.h_q / in.h_k;
  const std::vector<RowTask> tasks = row_tasks(in);
  parallel_for(static_cast<int>(tasks.size()), [&](int task) {
    const int seq = tasks[task].seq, h = tasks[task].head, hk = h / group;
    const int sq = in.s_q[seq], sk = in.s_k[seq];
    const double* q = in.q[seq].data();
    const double* k = in.k[seq].data();
    const double* v = in.v[seq].data();
    std::vector<double> x(sk);
    for (int i = tasks[task].row_begin; i < tasks[task].row_end; ++i) {
      double row_max = -std::numeric_limits<double>::infinity();
      for (int j = 0; j < sk; ++j) {
        if (!key_visible(in, seq, i, j)) continue;
        double dot = 0;
        for (int f = 0; f < d; ++f) dot += q[(static_cast<size_t>(i) * in.h_q + h) * d + f] * k[(static_cast<size_t>(j) * in.h_k + hk) * d + f];
        x[j] = logit(in, seq, h, i, j, dot);
        row_max = std::max(row_max, x[j]);
      }
      double* out = &o.out[seq][(static_cast<size_t>(i) * in.h_q + h) * d];
      if (row_max == -std::numeric_limits<double>::infinity()) {
        o.lse[seq][static_cast<size_t>(h) * sq + i] = std::numeric_limits<double>::infinity();
        continue;
      }
      double sum = 0;
      for (int j = 0; j < sk; ++j)
        if (key_visible(in, seq, i, j)) sum += std::exp(x[j] - row_max);
      const double lse = row_max + std::log(sum);
      o.lse[seq][static_cast<size_t>(h) * sq + i] = lse;
      for (int j = 0; j < sk; ++j) {
        if (!key_visible(in, seq, i, j)) continue;
        const double p = std::exp(x[j] - lse);
        o.probs[seq][(static_cast<size_t>(h) * sq + i) * sk + j] = p;
        if (!kept(in, seq, h, i, j)) continue;
        const double weight = p / (1.0 - in.dropout_p);
        for (int f = 0; f < d; ++f) out[f] += weight * v[(static_cast<size_t>(j) * in.h_k + hk) * d + f];
      }
    }
  });
  return o;
}

AttentionOutputs reference_same_precision(const AttentionInputs& in, flashplus_dtype dtype) {
  AttentionOutputs o = allocate(in);
  const int d = in.head_dim, group = in.h_q / in.h_k;
  const std::vector<RowTask> tasks = row_tasks(in);
  parallel_for(static_cast<int>(tasks.size()), [&](int task) {
    const int seq = tasks[task].seq, h = tasks[task].head, hk = h / group;
    const int sq = in.s_q[seq], sk = in.s_k[seq];
    const double* q = in.q[seq].data();
    const double* k = in.k[seq].data();
    const double* v = in.v[seq].data();
    std::vector<float> x(sk), acc(d);
    for (int i = tasks[task].row_begin; i < tasks[task].row_end; ++i) {
      float row_max = -std::numeric_limits<float>::infinity();
      for (int j = 0; j < sk; ++j) {
        if (!key_visible(in, seq, i, j)) continue;
        float dot = 0;
        for (int f = 0; f < d; ++f)
          dot += static_cast<float>(q[(static_cast<size_t>(i) * in.h_q + h) * d + f]) *
                 static_cast<float>(k[(static_cast<size_t>(j) * in.h_k + hk) * d + f]);
        x[j] = static_cast<float>(logit(in, seq, h, i, j, dot));
        row_max = std::max(row_max, x[j]);
      }
      if (row_max == -std::numeric_limits<float>::infinity()) {
        o.lse[seq][static_cast<size_t>(h) * sq + i] = std::numeric_limits<double>::infinity();
        continue;
      }
      float sum = 0;
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int j = 0; j < sk; ++j) {
        if (!key_visible(in, seq, i, j)) continue;
        const float p = std::exp(x[j] - row_max);
        sum += p;
        if (!kept(in, seq, h, i, j)) continue;
        const float p_low = static_cast<float>(round_to(p, dtype));
        for (int f = 0; f < d; ++f) acc[f] += p_low * static_cast<float>(v[(static_cast<size_t>(j) * in.h_k + hk) * d + f]);
      }
      o.lse[seq][static_cast<size_t>(h) * sq + i] = row_max + std::log(sum);
      const float rescale = 1.f / (sum * (1.f - static_cast<float>(in.dropout_p)));
      double* out = &o.out[seq][(static_cast<size_t>(i) * in.h_q + h) * d];
      for (int f = 0; f < d; ++f) out[f] = round_to(acc[f] * rescale, dtype);
    }
  });
  return o;
}

namespace {

// One (sequence, K/V head) per task: the task owns dK / dV of its head and dQ of its group's
// query heads, so no two tasks write the same element. Real = double (oracle) or float (naive),
// round() maps a value to what the naive kernel would store in the input precision.
template <typename Real, typename Round>
AttentionGrads backward(const AttentionInputs& in, const std::vector<std::vector<double>>& dout, Round round) {
  AttentionGrads g;
  const int sequences = static_cast<int>(in.s_q.size());
  const int d = in.head_dim, group = in.h_q / in.h_k;
  g.dq.resize(sequences);
  g.dk.resize(sequences);
  g.dv.resize(sequences);
  g.d_row.resize(sequences);
  for (int s = 0; s < sequences; ++s) {
    g.dq[s].assign(static_cast<size_t>(in.s_q[s]) * in.h_q * d, 0.0);
    g.dk[s].assign(static_cast<size_t>(in.s_k[s]) * in.h_k * d, 0.0);
    g.dv[s].assign(static_cast<size_t>(in.s_k[s]) * in.h_k * d, 0.0);
    g.d_row[s].assign(static_cast<size_t>(in.h_q) * in.s_q[s], 0.0);
  }
  parallel_for(sequences * in.h_k, [&](int task) {
    const int seq = task / in.h_k, hk = task % in.h_k;
    const int sq = in.s_q[seq], sk = in.s_k[seq];
    const double* q = in.q[seq].data();
    const double* k = in.k[seq].data();
    const double* v = in.v[seq].data();
    const double* o_grad = dout[seq].data();
    std::vector<Real> dq(d), dk(static_cast<size_t>(sk) * d, 0), dv(static_cast<size_t>(sk) * d, 0);
    std::vector<Real> x(sk), tanh_term(sk), p(sk), dp(sk);
    auto qv = [&](int i, int h, int f) { return static_cast<Real>(q[(static_cast<size_t>(i) * in.h_q + h) * d + f]); };
    auto kv = [&](const double* t, int j, int f) { return static_cast<Real>(t[(static_cast<size_t>(j) * in.h_k + hk) * d + f]); };
    auto gv = [&](int i, int h, int f) { return static_cast<Real>(o_grad[(static_cast<size_t>(i) * in.h_q + h) * d + f]); };
    for (int h = hk * group; h < (hk + 1) * group; ++h) {
      for (int i = 0; i < sq; ++i) {
        Real row_max = -std::numeric_limits<Real>::infinity();
        for (int j = 0; j < sk; ++j) {
          if (!key_visible(in, seq, i, j)) continue;
          Real dot = 0;
          for (int f = 0; f < d; ++f) dot += qv(i, h, f) * kv(k, j, f);
          Real logit_value = dot * static_cast<Real>(in.scale);
          tanh_term[j] = 0;
          if (in.softcap > 0) {
            const Real t = std::tanh(logit_value / static_cast<Real>(in.softcap));
            tanh_term[j] = t;
            logit_value = static_cast<Real>(in.softcap) * t;
          }
          if (!in.slopes.empty())
            logit_value -= static_cast<Real>(in.slopes[static_cast<size_t>(seq) * in.h_q + h]) *
                           static_cast<Real>(std::abs(i + sk - sq - j));
          x[j] = logit_value;
          row_max = std::max(row_max, logit_value);
        }
        if (row_max == -std::numeric_limits<Real>::infinity()) continue;  // no key: all gradients 0
        Real sum = 0;
        for (int j = 0; j < sk; ++j)
          if (key_visible(in, seq, i, j)) sum += std::exp(x[j] - row_max);
        const Real lse = row_max + std::log(sum);
        Real d_row = 0;
        for (int j = 0; j < sk; ++j) {
          p[j] = 0;
          dp[j] = 0;
          if (!key_visible(in, seq, i, j)) continue;
          p[j] = std::exp(x[j] - lse);
          const Real z = kept(in, seq, h, i, j) ? static_cast<Real>(1.0 / (1.0 - in.dropout_p)) : Real(0);
          Real dot = 0;
          for (int f = 0; f < d; ++f) dot += gv(i, h, f) * kv(v, j, f);
          dp[j] = z * dot;
          d_row += p[j] * dp[j];
          const Real pz = round(p[j] * z);
          for (int f = 0; f < d; ++f) dv[static_cast<size_t>(j) * d + f] += pz * gv(i, h, f);
        }
        g.d_row[seq][static_cast<size_t>(h) * sq + i] = d_row;
        std::fill(dq.begin(), dq.end(), Real(0));
        for (int j = 0; j < sk; ++j) {
          if (!key_visible(in, seq, i, j)) continue;
          Real ds = p[j] * (dp[j] - d_row) * static_cast<Real>(in.scale);
          if (in.softcap > 0) ds *= 1 - tanh_term[j] * tanh_term[j];
          ds = round(ds);
          for (int f = 0; f < d; ++f) {
            dq[f] += ds * kv(k, j, f);
            dk[static_cast<size_t>(j) * d + f] += ds * qv(i, h, f);
          }
        }
        for (int f = 0; f < d; ++f) g.dq[seq][(static_cast<size_t>(i) * in.h_q + h) * d + f] = round(dq[f]);
      }
    }
    for (int j = 0; j < sk; ++j)
      for (int f = 0; f < d; ++f) {
        g.dk[seq][(static_cast<size_t>(j) * in.h_k + hk) * d + f] = round(dk[static_cast<size_t>(j) * d + f]);
        g.dv[seq][(static_cast<size_t>(j) * in.h_k + hk) * d + f] = round(dv[static_cast<size_t>(j) * d + f]);
      }
  });
  return g;
}

}  // namespace

AttentionGrads reference_backward_fp64(const AttentionInputs& in, const std::vector<std::vector<double>>& dout) {
  return backward<double>(in, dout, [](double x) { return x; });
}

AttentionGrads reference_backward_same_precision(const AttentionInputs& in,
                                                 const std::vector<std::vector<double>>& dout, flashplus_dtype dtype) {
  return backward<float>(in, dout, [dtype](float x) { return static_cast<float>(round_to(x, dtype)); });
}

}  // namespace fpcuda
