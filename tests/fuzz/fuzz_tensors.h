// fuzz_tensors.h — tensors for one fuzz call, each meant to have a shape and possibly corrupted.
//
// The fuzzer decides per tensor whether it is present, and may corrupt its dtype, device, rank,
// sizes and strides (zero, negative, huge). Whenever the claimed extent is small, data points to
// a heap buffer of exactly that extent, so ASan flags any access outside what the descriptor
// claims; otherwise data is NULL (a claimed-huge tensor is never backed by a bogus pointer,
// because a valid huge request may legitimately be read in full).
#pragma once

#include <memory>
#include <vector>

#include "flashplus/flashplus.h"
#include "fuzz_bytes.h"

class FuzzTensors {
 public:
  explicit FuzzTensors(FuzzBytes& bytes) : bytes_(bytes) {}

  // A float (or any) tensor meant to be `sizes` of `dtype`; optional ones may come back absent.
  flashplus_tensor make(const std::vector<int64_t>& sizes, int32_t dtype, bool optional);

  // An int32 index tensor meant to be `sizes` and to hold `values` (row-major).
  flashplus_tensor make_index(const std::vector<int64_t>& sizes, const std::vector<int32_t>& values,
                              bool optional);

 private:
  flashplus_tensor describe(const std::vector<int64_t>& sizes, int32_t dtype);
  // Backs `tensor` with an exactly sized buffer when its extent is small; else data = NULL.
  bool back(flashplus_tensor& tensor);

  FuzzBytes& bytes_;
  std::vector<std::unique_ptr<unsigned char[]>> buffers_;
};
