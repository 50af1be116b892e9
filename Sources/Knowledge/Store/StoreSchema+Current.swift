// Written by `SSPA_WRITE_SCHEMA=1 swift test --filter aNewStoreGetsTheSchemaTheMigrationsBuild` from the
// migrations in StoreSchema.swift, which the test checks it equals. Do not edit by hand.
extension StoreSchema {
    /// The schema every migration together builds, for a new store (`StoreSchema.migrate`).
    static let current = #"""
CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
CREATE TABLE label_sets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,           -- the label file it was read from
    source_sha256 TEXT NOT NULL,
    template_hint TEXT,             -- from a '# template: NAME' comment
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    label_set_id INTEGER NOT NULL REFERENCES label_sets(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,      -- 0-based order of the label file
    raw_name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    synonyms TEXT NOT NULL DEFAULT '[]',  -- JSON array
    UNIQUE (label_set_id, raw_name)
);
CREATE INDEX labels_by_set ON labels(label_set_id, position);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    run_key TEXT NOT NULL UNIQUE,   -- SHA-256 of the run's identity; equal keys resume
    label_set_id INTEGER NOT NULL REFERENCES label_sets(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    endpoint TEXT NOT NULL,         -- base URL or WordNet folder; never a key
    model TEXT NOT NULL,
    template_name TEXT NOT NULL,
    template_sha256 TEXT NOT NULL,
    temperature REAL NOT NULL,
    seed INTEGER NOT NULL,
    n INTEGER NOT NULL,
    max_tokens INTEGER NOT NULL,
    descriptions_wanted INTEGER NOT NULL,
    demos INTEGER NOT NULL,
    demo_selection TEXT NOT NULL,
    structured TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'interrupted', 'failed')),
    message TEXT,
    tool_version TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    prompt TEXT NOT NULL,           -- the rendered messages, JSON
    demonstrations TEXT NOT NULL,   -- JSON array of demonstration labels shown
    params TEXT NOT NULL,           -- JSON: temperature, seed, n, max_tokens
    raw_response TEXT,
    http_status INTEGER,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_ms REAL,
    system_fingerprint TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',  -- JSON: structured-output form, WordNet sense keys, ...
    parse_format TEXT,
    flag TEXT,                      -- refusal, off-topic, empty
    error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX requests_by_label ON requests(run_id, label_id);
CREATE TABLE descriptions (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    request_id INTEGER NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    text TEXT NOT NULL CHECK (length(trim(text)) > 0),
    created_at TEXT NOT NULL, flags TEXT NOT NULL DEFAULT '', quality TEXT NOT NULL DEFAULT '{}',
    UNIQUE (run_id, label_id, position)
);
CREATE INDEX descriptions_by_label ON descriptions(label_id);
CREATE TABLE label_status (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('complete', 'short', 'none', 'failed')),
    descriptions INTEGER NOT NULL,
    wanted INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    message TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, label_id)
);
CREATE VIEW label_status_view AS
SELECT ls.name AS label_set, l.position AS label_position, l.raw_name AS label, l.display_name AS display_name,
       r.id AS run_id, r.provider AS provider, r.model AS model,
       s.state AS state, s.descriptions AS descriptions, s.wanted AS wanted, s.attempts AS attempts,
       s.message AS message, s.updated_at AS updated_at
FROM label_status s
JOIN labels l ON l.id = s.label_id
JOIN label_sets ls ON ls.id = l.label_set_id
JOIN runs r ON r.id = s.run_id
ORDER BY ls.name, r.id, l.position;
CREATE TABLE encoders (
    id TEXT PRIMARY KEY,            -- SHA-256 of the weight files, in name order
    path TEXT NOT NULL,             -- where the checkpoint was when first used
    config TEXT NOT NULL,           -- the text config, JSON
    dim INTEGER NOT NULL,           -- joint embedding width
    created_at TEXT NOT NULL
, identity TEXT NOT NULL DEFAULT 'weights-sha256', files TEXT NOT NULL DEFAULT '{}');
CREATE TABLE embeddings (
    encoder_id TEXT NOT NULL REFERENCES encoders(id) ON DELETE CASCADE,
    text_sha256 TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL,           -- little-endian float32, the projected (not normalised) embedding
    tokens INTEGER NOT NULL,        -- CLIP tokens including start and end
    truncated INTEGER NOT NULL,     -- 1 when the text was cut to 77 tokens
    created_at TEXT NOT NULL,
    PRIMARY KEY (encoder_id, text_sha256)
);
CREATE TABLE knowledge_vectors (
    encoder_id TEXT NOT NULL REFERENCES encoders(id) ON DELETE CASCADE,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,           -- t^ka: norm(mean of norm(E(s))), little-endian float32
    texts INTEGER NOT NULL,         -- how many texts were averaged
    created_at TEXT NOT NULL,
    PRIMARY KEY (encoder_id, run_id, label_id)
);
CREATE VIEW knowledge_vectors_view AS
SELECT ls.name AS label_set, l.position AS label_position, l.raw_name AS label, l.display_name AS display_name,
       k.encoder_id AS encoder, k.run_id AS run_id, k.texts AS texts, length(k.vector) / 4 AS dim, k.created_at AS created_at
FROM knowledge_vectors k JOIN labels l ON l.id = k.label_id JOIN label_sets ls ON ls.id = l.label_set_id
ORDER BY ls.name, k.encoder_id, l.position;
CREATE VIEW descriptions_view AS
SELECT
    ls.name AS label_set,
    l.position AS label_position,
    l.raw_name AS label,
    l.display_name AS display_name,
    d.position AS position,
    d.text AS description,
    d.flags AS flags,
    r.provider AS provider,
    r.model AS model,
    r.endpoint AS endpoint,
    r.template_name AS template,
    r.template_sha256 AS template_sha256,
    json_extract(q.params, '$.temperature') AS temperature,
    json_extract(q.params, '$.seed') AS seed,
    q.attempt AS attempt,
    q.finish_reason AS finish_reason,
    q.latency_ms AS latency_ms,
    json_extract(q.metadata, '$.sense_keys') AS sense_keys,
    r.id AS run_id,
    d.created_at AS created_at
FROM descriptions d
JOIN labels l ON l.id = d.label_id
JOIN label_sets ls ON ls.id = l.label_set_id
JOIN runs r ON r.id = d.run_id
JOIN requests q ON q.id = d.request_id
ORDER BY ls.name, r.id, l.position, d.position;
CREATE TABLE batch_requests (
    custom_id TEXT PRIMARY KEY,     -- sspa-r<run>-l<label position>-a<attempt>
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    request TEXT NOT NULL,          -- the exported input line (OpenAI Batch API format)
    input_file TEXT NOT NULL,
    exported_at TEXT NOT NULL,
    result TEXT,                    -- the output or error line, as the engine wrote it
    result_file TEXT,
    imported_at TEXT
, remote_batch_id TEXT REFERENCES remote_batches(id) ON DELETE SET NULL);
CREATE INDEX batch_requests_by_label ON batch_requests(run_id, label_id, attempt);
CREATE TABLE remote_batches (
    id TEXT PRIMARY KEY,            -- the Batch API's batch id
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    endpoint TEXT NOT NULL,         -- the API's base URL as shown (never a credential)
    input_file_id TEXT NOT NULL,
    requests INTEGER NOT NULL,
    status TEXT NOT NULL,           -- as the API last reported it
    counts TEXT,                    -- its request_counts, JSON
    output_file_id TEXT,
    error_file_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    collected_at TEXT               -- when its output and error files were imported
);
CREATE INDEX batch_requests_by_remote ON batch_requests(remote_batch_id);
"""#
}
