#include "support/rejection.h"

#include <cctype>

namespace fptest {

static bool is_identifier_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

bool message_names(const std::string& message, const std::string& name) {
  for (size_t at = message.find(name); at != std::string::npos; at = message.find(name, at + 1)) {
    const bool starts = at == 0 || !is_identifier_char(message[at - 1]);
    const size_t end = at + name.size();
    const bool ends = end == message.size() || !is_identifier_char(message[end]);
    if (starts && ends) return true;
  }
  return false;
}

::testing::AssertionResult rejected(flashplus_status status, flashplus_status expected,
                                    const std::vector<std::string>& any_of_names) {
  const std::string message = flashplus_last_error();
  if (status != expected)
    return ::testing::AssertionFailure() << "status " << flashplus_status_name(status)
                                         << ", expected " << flashplus_status_name(expected)
                                         << "; last error: \"" << message << "\"";
  if (any_of_names.empty()) {
    if (!message.empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "refused with an empty message";
  }
  for (const std::string& name : any_of_names)
    if (message_names(message, name)) return ::testing::AssertionSuccess();
  ::testing::AssertionResult failure = ::testing::AssertionFailure();
  failure << "message \"" << message << "\" names none of:";
  for (const std::string& name : any_of_names) failure << " " << name;
  return failure;
}

}  // namespace fptest
