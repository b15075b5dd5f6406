// build_info.cpp — see build_info.h.
#include "build_info.h"

#include <string>

#include "backend.h"

namespace flashplus {

const char* build_info_json() {
  // Built on first use; a function-local static is initialised thread-safely.
  static const std::string json = [] {
    std::string s = "{\"version\": \"" FLASHPLUS_VERSION_STRING "\", \"abi\": ";
    s += std::to_string(FLASHPLUS_ABI_VERSION);
    s += ", \"preset\": \"" FLASHPLUS_PRESET_NAME "\", \"backends\": {";
    s += "\"cpu\": {\"compiled\": true, \"head_dims\": \"1..256\", "
         "\"dtypes\": [\"float16\", \"bfloat16\", \"float32\"], "
         "\"features\": [\"fwd\", \"bwd\", \"varlen\", \"paged\", \"kvcache\", \"combine\", "
         "\"dropout\", \"alibi\", \"softcap\", \"window\"]}, ";
    s += "\"cuda\": ";
    s += cuda::build_info_json();
    s += "}}";
    return s;
  }();
  return json.c_str();
}

}  // namespace flashplus
