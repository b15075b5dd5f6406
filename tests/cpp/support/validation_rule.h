// validation_rule.h — table-driven validation tests: one rule, one mutation, one ctest test.
//
// Each rule starts from a valid call (checked to succeed first), breaks exactly one thing, and
// names the status and the argument the message must mention.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "flashplus/flashplus.h"
#include "support/host_tensor.h"

namespace fptest {

template <typename Fixture>
struct Rule {
  std::string label;  // the gtest parameter name
  std::function<void(Fixture&)> mutate;
  std::vector<std::string> names;  // the message must name one of these; empty: any message
  flashplus_status expected = FLASHPLUS_STATUS_INVALID_ARGUMENT;
  int base = 0;  // which valid baseline the fixture starts from (entry-point specific)
};

template <typename Fixture>
Rule<Fixture> make_rule(std::string label, std::function<void(Fixture&)> mutate,
                        std::vector<std::string> names, int base = 0) {
  Rule<Fixture> r;
  r.label = std::move(label);
  r.mutate = std::move(mutate);
  r.names = std::move(names);
  r.base = base;
  return r;
}

// A valid call (Case holds its tensors and args) plus the tensors a rule substitutes, kept alive
// until the call is made.
template <typename Case>
struct CaseFixture {
  Case c;
  std::vector<HostTensor> keep;

  auto& a() { return c.args; }
  flashplus_tensor int32(const std::vector<int32_t>& values) {
    keep.push_back(HostTensor::int32(values));
    return keep.back().abi();
  }
  flashplus_tensor tensor(flashplus_dtype dtype, std::vector<int64_t> sizes) {
    keep.push_back(HostTensor::contiguous(dtype, std::move(sizes)));
    return keep.back().abi();
  }
};

template <typename Fixture>
void PrintTo(const Rule<Fixture>& rule, std::ostream* os) {
  *os << rule.label;
}

struct RuleName {
  template <typename Info>
  std::string operator()(const Info& info) const { return info.param.label; }
};

inline bool cuda_compiled() {
  return flashplus_backend_status(FLASHPLUS_DEVICE_CUDA, 0) != FLASHPLUS_STATUS_NOT_COMPILED;
}

// Claims a tensor lives on CUDA device 0 (only its descriptor changes).
inline void claim_cuda(flashplus_tensor& tensor) {
  if (tensor.data) {
    tensor.device_type = FLASHPLUS_DEVICE_CUDA;
    tensor.device_index = 0;
  }
}

}  // namespace fptest
