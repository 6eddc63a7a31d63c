// Local delivery into a Maildir (the maildir(5) convention, as Dovecot and
// Postfix's local(8) use it): write into tmp/ under a unique name, fsync the
// file, rename it into new/, fsync new/. Creates cur/, new/ and tmp/ when
// missing. The stored file has LF line ends and starts with Return-Path: and
// Delivered-To: (RFC 5321 §4.4 asks the final delivery to add Return-Path).
//
// Blocking: call it off the event loop.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "delivery/outcome.h"

namespace tern::delivery {

struct MaildirMessage {
  std::string_view content;  // the spooled message, CR LF line ends
  std::string return_path;   // envelope sender, "" for <>
  std::string delivered_to;  // the recipient address
  std::string hostname;      // for the unique file name
};

// kDelivered with "250 2.0.0 Delivered to maildir <path>", or a temporary
// failure: "452 4.2.2 Mailbox full" for ENOSPC/EDQUOT, "451 4.3.0 ..." for any
// other error (permissions, missing parent), with the reason in the text.
Outcome deliver_to_maildir(const std::filesystem::path& maildir, const MaildirMessage& message);

}  // namespace tern::delivery
