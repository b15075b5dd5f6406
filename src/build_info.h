// build_info.h — the JSON that flashplus_build_info_json() returns (backends, archs, head dims,
// dtypes, preset), assembled once from the CPU backend's fixed capabilities and the CUDA variant
// manifest's generated description.
#pragma once

namespace flashplus {
const char* build_info_json();
}
