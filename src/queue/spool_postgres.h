// The spool shared by the nodes of a cluster, held in PostgreSQL (SPEC §6,
// docs/cluster.md): messages, their content in 256 KB chunks, one row per
// recipient, leases that give each message to one node at a time.
// Contract: as queue::Spool; open throws std::runtime_error with one line
// (the database's hosts, never its password) when it cannot be used.
#pragma once

#include <memory>

#include "queue/spool.h"

namespace tern::queue {

std::unique_ptr<Spool> open_postgres_spool(const config::Config& config, OpenMode mode);

}  // namespace tern::queue
