#include "support/attention_config.h"

#include <cmath>
#include <sstream>

#include "support/tensor_access.h"

namespace fptest {

float AttentionConfig::scale() const {
  return softmax_scale != 0.f ? softmax_scale
                              : static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

std::string AttentionConfig::name() const {
  if (!label.empty()) return label;
  std::ostringstream text;
  text << dtype_name(dtype) << "_";
  if (varlen()) text << "varlen" << seqlens_q.size();
  else text << "b" << batch << "_sq" << s_q << "_sk" << s_k;
  text << "_h" << h_q << "x" << h_k << "_d" << head_dim;
  if (page_size) text << "_page" << page_size;
  if (!seqused_k.empty()) text << "_seqused";
  if (!leftpad_k.empty()) text << "_leftpad";
  if (causal) text << "_causal";
  if (window_left >= 0 || window_right >= 0)
    text << "_win" << (window_left < 0 ? "inf" : std::to_string(window_left)) << "_"
         << (window_right < 0 ? "inf" : std::to_string(window_right));
  if (softcap > 0.f) text << "_softcap";
  if (alibi == Alibi::kPerHead) text << "_alibi";
  if (alibi == Alibi::kPerBatchHead) text << "_alibibh";
  if (dropout_p > 0.f) text << "_dropout";
  if (with_s_dmask) text << "_dmask";
  if (deterministic) text << "_det";
  return text.str();
}

}  // namespace fptest
