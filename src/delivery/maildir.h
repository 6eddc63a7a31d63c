// Local delivery into a Maildir (the maildir(5) convention, as Dovecot and
// Postfix's local(8) use it): write the file where no reader sees it (an
// unnamed O_TMPFILE inode, or tmp/), fsync it, link it into new/, fsync new/. Creates cur/, new/
// and tmp/ when missing. The stored file has LF line ends and starts with Return-Path: and
// Delivered-To: (RFC 5321 §4.4 asks the final delivery to add Return-Path).
//
// Idempotent: the file name is derived from the message (InternalId, arrival
// time, the recipient's index in the envelope, host name, size), so a repeat
// after a crash finds the earlier copy (in new/, or in cur/ once a reader has
// seen it, matched by the name up to ",S=" so that fields a reader adds do not
// hide it) and reports success without writing or linking again. The maildir
// and its tmp/, new/, cur/ are opened without following symbolic links: a
// symlinked one is refused with a temporary failure, never followed. The open
// folders are kept between deliveries (a bounded cache, checked against the
// paths before each use and dropped after an error), and deliveries into one
// maildir at the same time share the fsync of new/ (maildir_folders.h).
//
// Blocking, thread-safe: call it off the event loop, from several threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "delivery/outcome.h"

namespace tern::delivery {

struct MaildirMessage {
  std::string_view content;  // the spooled message, CR LF line ends
  std::string return_path;   // envelope sender, "" for <>
  std::string delivered_to;  // the recipient address
  std::string hostname;      // for the file name
  // What makes the file name deterministic. id 0: no InternalId, a unique
  // name from the clock, pid and a counter (not idempotent).
  std::uint64_t id = 0;             // InternalId
  std::int64_t arrival_ms = 0;      // a wiped spool that reuses ids cannot collide
  std::size_t recipient_index = 0;  // index in the envelope's recipients
  // This recipient may have been attempted before (the message was loaded
  // from the spool at start, or has attempts > 0): cur/ is searched for an
  // earlier copy a reader may have moved there. false spares the first
  // delivery a readdir of cur/; only a caller that knows it is the first
  // attempt since the message was accepted may say so.
  bool may_be_repeat = true;
};

// The name the message gets in new/ (cur/ adds ":2,<flags>").
std::string maildir_file_name(const MaildirMessage& message, std::size_t size);

// kDelivered with "250 2.0.0 Delivered to maildir <path>" (also when an
// earlier attempt already stored it), or a temporary failure: "452 4.2.2
// Mailbox full" for ENOSPC/EDQUOT, "451 4.3.0 ..." for any other error
// (permissions, missing parent, a symbolic link), with the reason in the text.
Outcome deliver_to_maildir(const std::filesystem::path& maildir, const MaildirMessage& message);

}  // namespace tern::delivery
