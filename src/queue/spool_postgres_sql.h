// Internal to the PostgreSQL spool: its schema (version kSchemaVersion, created
// and migrated under an advisory lock) and every statement it runs. Content is
// stored as chunk rows of at most kChunk bytes: seq = part << 20 | piece, part 0
// the prefix, 1..n the streamed parts, n+1 the rest (as the RocksDB spool).
#pragma once

#include <cstdint>

namespace tern::queue::postgres_spool::sql {

inline constexpr int kSchemaVersion = 2;
inline constexpr std::int64_t kChunk = 256 * 1024;
// pg_advisory_xact_lock key of the schema migration ("tern").
inline constexpr const char* kLock = "SELECT pg_advisory_xact_lock(1952805486)";

inline constexpr const char* kSchemaTable =
    "CREATE TABLE IF NOT EXISTS tern_schema (version integer NOT NULL)";
inline constexpr const char* kSchemaVersionQuery = "SELECT max(version) FROM tern_schema";
inline constexpr const char* kSchemaTableExists = "SELECT to_regclass('tern_schema') IS NOT NULL";

// Version 1. Times the scheduler compares are Unix milliseconds (next_attempt);
// leases use the database's clock (now()), the same for every node.
inline constexpr const char* kSchemaV1[] = {
    R"(CREATE TABLE messages (
         id bigint PRIMARY KEY,
         envelope bytea NOT NULL,
         next_attempt bigint NOT NULL,
         local boolean NOT NULL,
         held text,
         lease_owner text,
         lease_expiry timestamptz,
         lease_epoch bigint NOT NULL DEFAULT 0,
         action text,
         parts integer NOT NULL DEFAULT 0,
         created timestamptz NOT NULL DEFAULT now()))",
    "CREATE INDEX messages_due ON messages (local, next_attempt) WHERE held IS NULL",
    "CREATE INDEX messages_owner ON messages (lease_owner) WHERE lease_owner IS NOT NULL",
    "CREATE INDEX messages_action ON messages (local) WHERE action IS NOT NULL",
    R"(CREATE TABLE chunks (
         message_id bigint NOT NULL,
         seq bigint NOT NULL,
         data bytea NOT NULL,
         created timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (message_id, seq)))",
    R"(CREATE TABLE deliveries (
         message_id bigint NOT NULL,
         idx integer NOT NULL,
         address text NOT NULL,
         state text NOT NULL,
         attempts integer NOT NULL DEFAULT 0,
         last_reply text,
         PRIMARY KEY (message_id, idx)))",
    R"(CREATE TABLE events (
         id bigserial PRIMARY KEY,
         at timestamptz NOT NULL DEFAULT now(),
         message_id bigint,
         node text,
         kind text NOT NULL,
         detail jsonb))",
    "CREATE INDEX events_message ON events (message_id)",
    // Each nextval() reserves 1000 ids (IdBlocks); ids look like the RocksDB
    // spool's: they start at the Unix time in milliseconds of the creation.
    "CREATE SEQUENCE tern_ids INCREMENT BY 1000 MINVALUE 1 START WITH 1",
    "SELECT setval('tern_ids', (extract(epoch FROM now()) * 1000)::bigint / 1000 * 1000)",
    // A streamed message is committed only with every part present: a part
    // written (unsynced) to a primary that failed over since may be lost.
    R"(CREATE FUNCTION tern_parts_present(m bigint, n bigint) RETURNS void
       LANGUAGE plpgsql AS $$
       BEGIN
         IF (SELECT count(DISTINCT seq >> 20) FROM chunks
             WHERE message_id = m AND seq >> 20 BETWEEN 1 AND n) <> n THEN
           RAISE EXCEPTION 'parts of message % are missing', m;
         END IF;
       END $$)",
    "INSERT INTO tern_schema (version) VALUES (1)",
};

// Version 2: the message trail (trail.h), one row per event of a recipient,
// kept after the message leaves `messages` until it expires. The *_key
// columns hold the forms queries compare (trail_message_id_key,
// trail_address_key). The `events` table of version 1 was never written.
inline constexpr const char* kSchemaV2[] = {
    "DROP TABLE IF EXISTS events",
    R"(CREATE TABLE trail (
         seq bigserial PRIMARY KEY,
         message bigint NOT NULL,
         time_ms bigint NOT NULL,
         event text NOT NULL,
         message_id text NOT NULL,
         sender text NOT NULL,
         recipient text NOT NULL,
         remote_host text NOT NULL,
         reply text NOT NULL,
         message_key text NOT NULL,
         sender_key text NOT NULL,
         recipient_key text NOT NULL))",
    "CREATE INDEX trail_message ON trail (message, time_ms)",
    "CREATE INDEX trail_message_key ON trail (message_key)",
    "CREATE INDEX trail_sender ON trail (sender_key)",
    "CREATE INDEX trail_recipient ON trail (recipient_key)",
    "CREATE INDEX trail_time ON trail (time_ms)",
    // sendmail's drop files a node's pickup queued (SpoolChange::picked_up),
    // written in the commit of their messages: a crash before the file's
    // unlink never queues it twice. Names are 128 random bits; per node, as
    // each node has its own maildrop.
    R"(CREATE TABLE pickups (
         node text NOT NULL,
         name text NOT NULL,
         PRIMARY KEY (node, name)))",
    "UPDATE tern_schema SET version = 2",
};

// $1 node, $2 drop file name.
inline constexpr const char* kRecordPickup =
    "INSERT INTO pickups (node, name) VALUES ($1, $2) ON CONFLICT DO NOTHING";
inline constexpr const char* kForgetPickup = "DELETE FROM pickups WHERE node = $1 AND name = $2";
inline constexpr const char* kWasPickedUp = "SELECT 1 FROM pickups WHERE node = $1 AND name = $2";
inline constexpr const char* kPickedUpNames = "SELECT name FROM pickups WHERE node = $1";

// A batch of trail events (arrays in step): $1 messages, $2 times, $3 events,
// $4 Message-IDs, $5 senders, $6 recipients, $7 remote hosts, $8 replies,
// $9 message keys, $10 sender keys, $11 recipient keys.
inline constexpr const char* kAddTrail =
    "INSERT INTO trail (message, time_ms, event, message_id, sender, recipient, remote_host, "
    "reply, message_key, sender_key, recipient_key) "
    "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], "
    "$6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])";
#define TERN_TRAIL_COLUMNS \
  "SELECT message, time_ms, event, message_id, sender, recipient, remote_host, reply FROM trail "
// $1 the InternalId.
inline constexpr const char* kTrailById =
    TERN_TRAIL_COLUMNS "WHERE message = $1 ORDER BY time_ms, seq";
// $1 a Message-ID key.
inline constexpr const char* kTrailByMessageId = TERN_TRAIL_COLUMNS
    "WHERE message IN (SELECT message FROM trail WHERE message_key = $1) ORDER BY time_ms, seq";
// $1 an address key, $2 the same as a Message-ID key (an address-like Message-ID).
inline constexpr const char* kTrailByAddress = TERN_TRAIL_COLUMNS
    "WHERE message IN (SELECT message FROM trail WHERE sender_key = $1 UNION "
    "SELECT message FROM trail WHERE recipient_key = $1 UNION "
    "SELECT message FROM trail WHERE message_key = $2) ORDER BY time_ms, seq";
#undef TERN_TRAIL_COLUMNS
// $1 the cutoff (Unix ms): the trails whose newest event is older and whose
// message is no longer queued.
inline constexpr const char* kExpireTrail =
    "DELETE FROM trail WHERE message IN (SELECT DISTINCT o.message FROM trail o "
    "WHERE o.time_ms < $1 "
    "AND NOT EXISTS (SELECT 1 FROM trail n WHERE n.message = o.message AND n.time_ms >= $1) "
    "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = o.message))";

inline constexpr const char* kNextBlock = "SELECT nextval('tern_ids')";

// New mail, every message of a batch at once (the arrays are in step, one
// element a row, sent in binary). Plain INSERTs: a new message's id is fresh.
// A message written before by a commit whose outcome was unknown fails the
// batch, and is then written again alone with the upserts below.
// $1 ids, $2 envelopes, $3 next_attempt, $4 local, $5 held (NULL: not held), $6 parts.
inline constexpr const char* kAddMessages =
    "INSERT INTO messages (id, envelope, next_attempt, local, held, parts) "
    "SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::boolean[], $5::text[], "
    "$6::integer[])";
// $1 message ids, $2 seqs, $3 data (pieces of at most kChunk bytes).
inline constexpr const char* kAddChunks =
    "INSERT INTO chunks (message_id, seq, data) "
    "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])";
// $1 message ids, $2 indexes, $3 addresses, $4 states, $5 attempts, $6 last replies.
inline constexpr const char* kAddDeliveries =
    "INSERT INTO deliveries (message_id, idx, address, state, attempts, last_reply) "
    "SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::text[], $5::integer[], "
    "$6::text[])";
// $1 ids, $2 their parts: the streamed messages of a batch (tern_parts_present).
inline constexpr const char* kAddPartsPresent =
    "SELECT tern_parts_present(u.m, u.n) FROM unnest($1::bigint[], $2::bigint[]) AS u(m, n)";

// One message at a time, idempotent (the per-change retry after a failed batch).
// $1 id, $2 part, $3 bytes: the part as chunk rows of kChunk bytes.
inline constexpr const char* kInsertChunks =
    "INSERT INTO chunks (message_id, seq, data) "
    "SELECT $1::bigint, ($2::bigint << 20) + i, substring($3::bytea FROM i * 262144 + 1 FOR "
    "262144) "
    "FROM generate_series(0, greatest(0, (length($3::bytea) - 1) / 262144)) AS i "
    "ON CONFLICT (message_id, seq) DO UPDATE SET data = excluded.data";

// $1 id, $2 envelope, $3 next_attempt, $4 local, $5 held, $6 parts.
inline constexpr const char* kInsertMessage =
    "INSERT INTO messages (id, envelope, next_attempt, local, held, parts) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET envelope = excluded.envelope, "
    "next_attempt = excluded.next_attempt, local = excluded.local, held = excluded.held";

inline constexpr const char* kPartsPresent = "SELECT tern_parts_present($1, $2)";

// $1 id, $2 addresses, $3 states, $4 attempts, $5 last replies (arrays).
inline constexpr const char* kUpsertDeliveries =
    "INSERT INTO deliveries (message_id, idx, address, state, attempts, last_reply) "
    "SELECT $1::bigint, u.i - 1, u.a, u.s, u.n, u.r "
    "FROM unnest($2::text[], $3::text[], $4::int[], $5::text[]) WITH ORDINALITY AS u(a, s, n, r, "
    "i) "
    "ON CONFLICT (message_id, idx) DO UPDATE SET address = excluded.address, "
    "state = excluded.state, attempts = excluded.attempts, last_reply = excluded.last_reply";

// Whether this writer may change message id: with the epoch of its lease
// ($E, $O: the epoch and owner), only while it still holds that lease;
// without one (a write from no claim), only while no live lease holds it.
#define TERN_LEASED(E, O)                                              \
  "(CASE WHEN " E                                                      \
  "::bigint IS NULL THEN lease_owner IS NULL OR lease_expiry < now() " \
  "ELSE lease_owner = " O "::text AND lease_epoch = " E "::bigint END)"

// $1 id, $2 envelope, $3 next_attempt, $4 local, $5 held, $6 epoch, $7 owner,
// $8..$11 the deliveries' arrays. Returns the rows written (0: lease taken).
inline constexpr const char* kUpdateMessage =
    "WITH m AS (UPDATE messages SET envelope = $2, next_attempt = $3, local = $4, held = $5 "
    "WHERE id = $1 AND " TERN_LEASED("$6", "$7") " RETURNING id), "
    "d AS (INSERT INTO deliveries (message_id, idx, address, state, attempts, last_reply) "
    "SELECT m.id, u.i - 1, u.a, u.s, u.n, u.r FROM m, "
    "unnest($8::text[], $9::text[], $10::int[], $11::text[]) WITH ORDINALITY AS u(a, s, n, r, i) "
    "ON CONFLICT (message_id, idx) DO UPDATE SET address = excluded.address, "
    "state = excluded.state, attempts = excluded.attempts, last_reply = excluded.last_reply) "
    "SELECT count(*) FROM m";

// $1 id, $2 epoch, $3 owner. Returns the rows removed (0: lease taken).
inline constexpr const char* kRemoveMessage =
    "WITH m AS (DELETE FROM messages WHERE id = $1 AND " TERN_LEASED("$2", "$3") " RETURNING id), "
    "c AS (DELETE FROM chunks WHERE message_id IN (SELECT id FROM m)), "
    "d AS (DELETE FROM deliveries WHERE message_id IN (SELECT id FROM m)) "
    "SELECT count(*) FROM m";

#undef TERN_LEASED

// Parts of a message never committed.
inline constexpr const char* kDiscard =
    "DELETE FROM chunks WHERE message_id = $1 AND NOT EXISTS (SELECT 1 FROM messages WHERE id = "
    "$1)";

// Parts of messages never committed, old enough that no node still streams
// them (a node died in the middle of a message).
inline constexpr const char* kDropOrphanChunks =
    "DELETE FROM chunks c WHERE created < now() - interval '1 day' "
    "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = c.message_id)";

// $1 id, $2 owner, $3 epoch.
inline constexpr const char* kRelease =
    "UPDATE messages SET lease_owner = NULL, lease_expiry = NULL "
    "WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3";
// $1 owner: every lease of a node (at its start and its close).
inline constexpr const char* kReleaseAll =
    "UPDATE messages SET lease_owner = NULL, lease_expiry = NULL WHERE lease_owner = $1";

inline constexpr const char* kNotify = "NOTIFY tern_queue";
inline constexpr const char* kListen = "LISTEN tern_queue";

// $1 owner, $2 lease (ms), $3 local lane, $4 how many. Returns id, local,
// epoch, envelope, action ('' for none), content.
inline constexpr const char* kClaim =
    // Two index scans (messages_due, messages_action), never the whole queue:
    // the due ones in next_attempt order and those an administrator's action
    // waits on; now() is the statement's time, the same for every row.
    "WITH due AS (SELECT id, next_attempt FROM messages WHERE held IS NULL AND local = $3 "
    "AND next_attempt <= (extract(epoch FROM now()) * 1000)::bigint "
    "AND (lease_owner IS NULL OR lease_expiry < now()) "
    "ORDER BY next_attempt LIMIT $4 FOR UPDATE SKIP LOCKED), "
    "act AS (SELECT id, 0::bigint AS next_attempt FROM messages WHERE action IS NOT NULL "
    "AND held IS NULL AND local = $3 AND (lease_owner IS NULL OR lease_expiry < now()) "
    "LIMIT $4 FOR UPDATE SKIP LOCKED), "
    "d AS (SELECT id FROM (SELECT id, min(next_attempt) AS n FROM "
    "(SELECT * FROM act UNION ALL SELECT * FROM due) u GROUP BY id) v ORDER BY n LIMIT $4), "
    // The action is handed to this claimer once: cleared as it is taken, so
    // a message is not claimed again and again for it.
    "old AS (SELECT m.id, m.action FROM messages m JOIN d ON m.id = d.id), "
    "c AS (UPDATE messages m SET lease_owner = $1, "
    "lease_expiry = now() + $2::bigint * interval '1 millisecond', "
    "lease_epoch = m.lease_epoch + 1, action = NULL "
    "FROM old WHERE m.id = old.id "
    "RETURNING m.id, m.local, m.lease_epoch, m.envelope, old.action) "
    "SELECT c.id, c.local, c.lease_epoch, c.envelope, coalesce(c.action, ''), "
    "coalesce((SELECT string_agg(data, ''::bytea ORDER BY seq) FROM chunks "
    "WHERE message_id = c.id), ''::bytea) FROM c";

// $1 id, $2 owner, $3 lease (ms): an administrator's lease, when none is live.
// Returns epoch, envelope, content.
inline constexpr const char* kTake =
    "UPDATE messages m SET lease_owner = $2, "
    "lease_expiry = now() + $3::bigint * interval '1 millisecond', "
    "lease_epoch = m.lease_epoch + 1 "
    "WHERE id = $1 AND (lease_owner IS NULL OR lease_expiry < now()) "
    "RETURNING m.lease_epoch, m.envelope, coalesce((SELECT string_agg(data, ''::bytea ORDER BY "
    "seq) FROM chunks WHERE message_id = m.id), ''::bytea)";
// $1 id, $2 action.
inline constexpr const char* kRecordAction =
    "UPDATE messages SET action = $2 WHERE id = $1 RETURNING id";

// $1 owner, $2 lease (ms), $3 ids. Returns the ids still leased.
inline constexpr const char* kRenew =
    "UPDATE messages SET lease_expiry = now() + $2::bigint * interval '1 millisecond' "
    "WHERE lease_owner = $1 AND id = ANY($3::bigint[]) RETURNING id";

// $1 id, $2 reason, $3 owner: an envelope that does not decode is held.
inline constexpr const char* kQuarantine =
    "UPDATE messages SET held = $2, lease_owner = NULL, lease_expiry = NULL "
    "WHERE id = $1 AND lease_owner = $3";

inline constexpr const char* kList = "SELECT id, envelope FROM messages ORDER BY id";
// $1 now (Unix ms). The queue by state for tern_queue_messages: active
// (leased), queued (due), deferred (due later), held, quarantined (its
// envelope does not decode: held with "unreadable envelope: …").
inline constexpr const char* kCountStates =
    "SELECT count(*) FILTER (WHERE held IS NULL AND lease_owner IS NOT NULL "
    "AND lease_expiry > now()), "
    "count(*) FILTER (WHERE held IS NULL AND (lease_owner IS NULL OR lease_expiry <= now()) "
    "AND next_attempt <= $1), "
    "count(*) FILTER (WHERE held IS NULL AND (lease_owner IS NULL OR lease_expiry <= now()) "
    "AND next_attempt > $1), "
    "count(*) FILTER (WHERE held IS NOT NULL AND held NOT LIKE 'unreadable envelope:%'), "
    "count(*) FILTER (WHERE held LIKE 'unreadable envelope:%') FROM messages";
inline constexpr const char* kFind = "SELECT envelope FROM messages WHERE id = $1";
inline constexpr const char* kContent =
    "SELECT coalesce((SELECT string_agg(data, ''::bytea ORDER BY seq) FROM chunks "
    "WHERE message_id = m.id), ''::bytea) FROM messages m WHERE id = $1";

}  // namespace tern::queue::postgres_spool::sql
