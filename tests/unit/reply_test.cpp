// smtp::Reply: the wire form of single- and multi-line replies (RFC 5321 §4.2).
#include <gtest/gtest.h>

#include "smtp/replies.h"

namespace tern::smtp {

TEST(Reply, SingleLineWithEnhancedCode) {
  EXPECT_EQ(replies::kSenderOk.wire(), "250 2.1.0 Sender OK\r\n");
}

TEST(Reply, MultiLineUsesDashUntilTheLast) {
  Reply r(250, "", std::vector<std::string>{"host Hello [1.2.3.4]", "SIZE 10", "PIPELINING"});
  EXPECT_EQ(r.wire(), "250-host Hello [1.2.3.4]\r\n250-SIZE 10\r\n250 PIPELINING\r\n");
}

TEST(Reply, QueuedCarriesIdAndHost) {
  EXPECT_EQ(replies::queued("<a@b>", 42, "mx.example").wire(),
            "250 2.6.0 <a@b> [InternalId=42, Hostname=mx.example] Queued mail for delivery\r\n");
}

TEST(Reply, EmptyChallengeKeepsTheSpace) {
  EXPECT_EQ(Reply(334, "", "").wire(), "334 \r\n");
}

}  // namespace tern::smtp
