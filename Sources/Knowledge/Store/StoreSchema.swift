import GRDB

/// knowledge.db's schema, as named migrations. `sqlite3 knowledge.db "select identifier from grdb_migrations"` shows which ran.
///
/// A migration, once released, never changes: a new need gets a new migration. After adding one, rewrite the schema a
/// new store starts from (`StoreSchema+Current.swift`) with
/// `SSPA_WRITE_SCHEMA=1 swift test --filter aNewStoreGetsTheSchemaTheMigrationsBuild`; that test fails until then.
enum StoreSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()

        migrator.registerMigration("v1-label-sets") { db in
            try db.execute(sql: """
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
                """)
        }

        migrator.registerMigration("v1-runs-and-descriptions") { db in
            try db.execute(sql: """
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
                    created_at TEXT NOT NULL,
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
                """)
        }

        migrator.registerMigration("v1-descriptions-view") { db in
            try db.execute(sql: """
                CREATE VIEW descriptions_view AS
                SELECT
                    ls.name AS label_set,
                    l.position AS label_position,
                    l.raw_name AS label,
                    l.display_name AS display_name,
                    d.position AS position,
                    d.text AS description,
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
                """)
        }
        migrator.registerMigration("v2-embeddings") { db in
            try db.execute(sql: """
                CREATE TABLE encoders (
                    id TEXT PRIMARY KEY,            -- SHA-256 of the weight files, in name order
                    path TEXT NOT NULL,             -- where the checkpoint was when first used
                    config TEXT NOT NULL,           -- the text config, JSON
                    dim INTEGER NOT NULL,           -- joint embedding width
                    created_at TEXT NOT NULL
                );
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
                """)
        }
        migrator.registerMigration("v3-encoder-identity") { db in
            // Encoders were keyed by their weights' SHA-256 alone, so a fixed config.json, vocab.json or merges.txt
            // reused stale vectors. Ids are now CLIP.Checkpoint.Identity (every file that changes an embedding); the
            // old rows stay readable, marked, and never match a new id.
            try db.execute(sql: """
                ALTER TABLE encoders ADD COLUMN identity TEXT NOT NULL DEFAULT 'weights-sha256';  -- what the id hashes
                ALTER TABLE encoders ADD COLUMN files TEXT NOT NULL DEFAULT '{}';   -- JSON: file name -> its SHA-256
                """)
        }
        migrator.registerMigration("v4-endpoint-credentials-removed") { db in
            try StoreSchema.removeEndpointCredentials(db)
        }
        migrator.registerMigration("v5-description-flags") { db in
            // Every description carries its quality flags (DescriptionQuality); the stored ones are judged now, from
            // what the store holds (the request's demonstrations, the label set, the answer it came from).
            try db.execute(sql: """
                ALTER TABLE descriptions ADD COLUMN flags TEXT NOT NULL DEFAULT '';     -- e.g. 'copied,too-long'; '' when clean
                ALTER TABLE descriptions ADD COLUMN quality TEXT NOT NULL DEFAULT '{}'; -- JSON: the measurements behind the flags
                DROP VIEW descriptions_view;
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
                """)
            try StoredQuality.assessAll(db)
        }
        migrator.registerMigration("v6-batch-requests") { db in
            try db.execute(sql: """
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
                );
                CREATE INDEX batch_requests_by_label ON batch_requests(run_id, label_id, attempt);
                """)
        }
        migrator.registerMigration("v7-remote-batches") { db in
            // Batches `build --provider openai-batch` created on a Batch API, so a build (or `batch resume`) can find
            // and collect them after Ctrl-C; each exported line names the batch that carries it.
            try db.execute(sql: """
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
                ALTER TABLE batch_requests ADD COLUMN remote_batch_id TEXT REFERENCES remote_batches(id) ON DELETE SET NULL;
                CREATE INDEX batch_requests_by_remote ON batch_requests(remote_batch_id);
                """)
        }
        return migrator
    }

    /// Earlier versions stored `--endpoint` as given, so `http://user:secret@host` or `?api_key=…` could sit in
    /// `runs.endpoint` and in the request log's error texts. This keeps only `EndpointURL.display` and redacts the
    /// credential values wherever the run's requests mention them.
    static func removeEndpointCredentials(_ db: Database) throws {
        for row in try Row.fetchAll(db, sql: "SELECT id, endpoint FROM runs") {
            let id: Int64 = row["id"]
            let stored: String = row["endpoint"]
            guard let endpoint = try? EndpointURL(stored), endpoint.user != nil || !endpoint.secretQuery.isEmpty else { continue }
            try db.execute(sql: "UPDATE runs SET endpoint = ? WHERE id = ?", arguments: [endpoint.display, id])
            for secret in endpoint.secrets {
                for column in ["error", "raw_response", "prompt"] {
                    try db.execute(sql: "UPDATE requests SET \(column) = replace(\(column), ?, '[redacted]') WHERE run_id = ? AND instr(\(column), ?) > 0",
                                   arguments: [secret, id, secret])
                }
            }
        }
    }

    /// Brings a store's schema up to date. A file with no schema yet (a new store) gets the current one in one
    /// script, `current`, written from these migrations and tested to equal what they build: replaying nine
    /// migrations, with GRDB's checks around each, cost a new store about 8 ms of CPU. Any other file gets the
    /// migrations it has not had.
    static func migrate(_ writer: some DatabaseWriter) throws {
        var created = false
        try writer.writeWithoutTransaction { db in
            // IMMEDIATE: a second process creating the same file waits, then finds the schema and migrates nothing.
            try db.inTransaction(.immediate) {
                guard try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") == 0 else { return .rollback }
                try db.execute(sql: current)
                for identifier in migrator.migrations {
                    try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES (?)", arguments: [identifier])
                }
                created = true
                return .commit
            }
        }
        if !created { try migrator.migrate(writer) }
    }

    /// The schema the migrations build, as `current` holds it: each statement SQLite keeps for a table, index or
    /// view, in the order they were made.
    static func currentSchema(_ db: Database) throws -> String {
        try String.fetchAll(db, sql: "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")
            .map { $0 + ";" }.joined(separator: "\n")
    }

    /// Applied migrations this version does not know, in name order: a newer sspa-knowledge wrote the file.
    static func unknownMigrations(_ db: Database) throws -> [String] {
        let known = Set(migrator.migrations)
        return try migrator.appliedIdentifiers(db).filter { !known.contains($0) }.sorted()
    }
}
