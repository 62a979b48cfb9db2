// Package upstream drains the gateway's outbox to integrators: MQTT 5
// brokers and HTTPS webhooks, at least once, in per-device order, across
// crashes and outages.
//
// The outbox is a Source (gateway/store implements it over SQLite; a
// MemorySource serves tests and the testbed). A Deliverer runs one loop
// per Sink, each with its own cursor in the Source:
//
//	Next(batch) → Deliver → Park refused records → Ack the delivered-or-parked prefix
//
// # Guarantees
//
//   - At least once. The cursor moves only past records the upstream
//     acknowledged (MQTT PUBACK with a success code, HTTP 2xx) or refused
//     for good (parked, durably, with the reason). A crash between the
//     upstream's acknowledgement and Ack delivers the record again.
//   - Idempotency key. Every copy of a record carries its id, the SHA-256
//     of its COSE_Sign1 bytes: the MQTT user property record-id and the
//     webhook Idempotency-Key. Integrators deduplicate on it.
//   - Per-device order. Within a batch a device has at most one record in
//     flight and its next record starts only after the previous one was
//     delivered or parked; across batches the first record that needs a
//     retry blocks the sink (head-of-line) and everything after it is sent
//     again from there. So an upstream never receives record k+1 of a
//     device before it accepted record k, even when it refuses record k
//     with a retryable code (MQTT 0x97 Quota exceeded, HTTP 503) and would
//     have accepted k+1. Different devices overlap (MaxInflight), which is
//     where the throughput comes from.
//   - Nothing is dropped for being old or for a long outage: retries back
//     off (full jitter, 500 ms doubling to a 5 min cap by default, reset by
//     any progress) and a recovered MQTT link cuts the wait short.
//
// # Why head-of-line blocking per sink
//
// A record that needs a retry stops its sink, not only its device. Per-
// device queues would let other devices proceed, but the Source has one
// cursor per sink, so records delivered past a blocked one could not be
// acknowledged without a per-record delivery table; after a crash they
// would be sent again anyway. Retryable failures are almost always about
// the link or the upstream as a whole (connection down, 5xx, quota), which
// affect every device alike, while a refusal specific to one record is
// permanent and parks it. The simple design loses nothing in the common
// case and keeps the Source interface to a cursor.
//
// # Metrics
//
// All labelled by sink: tumbler_upstream_backlog_records,
// tumbler_upstream_oldest_undelivered_age_seconds (both refreshed from
// Source.Backlog every 2 s, also during outages), tumbler_upstream_sink_up,
// tumbler_upstream_delivered_total, tumbler_upstream_retried_total (failed
// attempts, one per backoff), tumbler_upstream_parked_total,
// tumbler_upstream_delivery_latency_seconds (record signing to upstream
// acknowledgement) and tumbler_upstream_batch_duration_seconds.
package upstream
