// rejection.h — assert that a call was refused for the right reason.
//
// The ABI promises a status and a message naming the argument. A name counts only as a whole
// identifier in the message ("k" is found in "k: ..." or "args.k", not in "block_table"), and a
// rule may list alternatives where the header leaves the wording open (e.g. "k" or "h_k").
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "flashplus/flashplus.h"

namespace fptest {

bool message_names(const std::string& message, const std::string& name);

::testing::AssertionResult rejected(flashplus_status status, flashplus_status expected,
                                    const std::vector<std::string>& any_of_names);

inline ::testing::AssertionResult invalid(flashplus_status status,
                                          const std::vector<std::string>& any_of_names) {
  return rejected(status, FLASHPLUS_STATUS_INVALID_ARGUMENT, any_of_names);
}

}  // namespace fptest
