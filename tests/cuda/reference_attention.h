// reference_attention.h — naive host attention for the GPU tests, written from flashplus.h's
// contract alone (no code shared with kernels/, src/ or cpu/).
//
// Inputs are logical: per sequence, q (s_q, h_q, d), k and v (s_k, h_k, d), already holding the
// exact values of the device tensors. Two references:
//   reference_fp64            everything in double: the oracle
//   reference_same_precision  what a naive kernel of the input precision computes (fp32 scores and
//                             softmax, P rounded to the input type before P @ V, output rounded):
//                             its error against the oracle sets the tolerance scale.
#pragma once

#include <cstdint>
#include <vector>

#include "flashplus/flashplus.h"

namespace fpcuda {

struct AttentionInputs {
  int h_q = 0, h_k = 0, head_dim = 0;
  std::vector<int> s_q, s_k;                 // per sequence
  std::vector<std::vector<double>> q, k, v;  // per sequence, row-major (s, h, d)
  double scale = 1.0;
  double softcap = 0.0;
  int window_left = -1, window_right = -1;   // causal = window_right 0
  std::vector<double> slopes;                // (batch * h_q) or empty
  double dropout_p = 0.0;
  std::vector<std::vector<uint8_t>> keep;    // per sequence (h_q, s_q, s_k); empty = keep all
};

struct AttentionOutputs {
  std::vector<std::vector<double>> out;    // per sequence (s_q, h_q, d)
  std::vector<std::vector<double>> lse;    // per sequence (h_q, s_q); +inf where no key is visible
  std::vector<std::vector<double>> probs;  // per sequence (h_q, s_q, s_k): normalised P, 0 if masked
};

// Gradients of the forward above for an upstream gradient dout (per sequence (s_q, h_q, d)).
struct AttentionGrads {
  std::vector<std::vector<double>> dq;     // per sequence (s_q, h_q, d)
  std::vector<std::vector<double>> dk, dv; // per sequence (s_k, h_k, d), summed over each GQA group
  std::vector<std::vector<double>> d_row;  // per sequence (h_q, s_q): rowsum(dout * out)
};

bool key_visible(const AttentionInputs& in, int seq, int i, int j);

AttentionOutputs reference_fp64(const AttentionInputs& in);
AttentionOutputs reference_same_precision(const AttentionInputs& in, flashplus_dtype dtype);

// fp64: everything in double. Same precision: fp32 arithmetic with P * Z and dS rounded to dtype
// before the products that use them, and gradients rounded to dtype at the end.
AttentionGrads reference_backward_fp64(const AttentionInputs& in, const std::vector<std::vector<double>>& dout);
AttentionGrads reference_backward_same_precision(const AttentionInputs& in,
                                                 const std::vector<std::vector<double>>& dout, flashplus_dtype dtype);

}  // namespace fpcuda
