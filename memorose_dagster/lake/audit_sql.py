"""The audits as SQL over the lake's views (and the node censuses): each query returns the
rows that break a rule, so an empty result is a pass. Pure text; ``audits.py`` runs them."""

from __future__ import annotations

# Every id a record owns, and who owns it: what links may point at.
OWNERS = """
    SELECT tenant, user_id, event_id AS id, 'event' AS kind FROM events
    UNION ALL SELECT tenant, user_id, id, 'l1' FROM memories
    UNION ALL SELECT tenant, user_id, id, 'l2' FROM insights
    UNION ALL SELECT tenant, user_id, id, 'entity' FROM entities
"""

# Every link one record makes to another, with the kinds it may point at.
LINKS = """
    SELECT tenant, user_id, id AS from_id, 'l1.source_event_ids' AS link,
           UNNEST(source_event_ids) AS to_id FROM memories
    UNION ALL SELECT tenant, user_id, id, 'l2.source_event_ids', UNNEST(source_event_ids)
              FROM insights
    UNION ALL SELECT tenant, user_id, id, 'l2.member_ids', UNNEST(member_ids) FROM insights
    UNION ALL SELECT tenant, user_id, id, 'entity.memory_ids', UNNEST(memory_ids) FROM entities
    UNION ALL SELECT tenant, user_id, id, 'relation.source', source FROM relations
    UNION ALL SELECT tenant, user_id, id, 'relation.target', target FROM relations
    UNION ALL SELECT tenant, user_id, id, 'relation.source_event_ids',
              UNNEST(source_event_ids) FROM relations
    UNION ALL SELECT tenant, user_id, id, 'l1.superseded_by', superseded_by FROM memories
              WHERE superseded_by IS NOT NULL
"""

MISSING_SOURCES = f"""
    WITH links AS ({LINKS}), owners AS ({OWNERS})
    SELECT l.tenant, l.user_id, l.from_id, l.link, l.to_id FROM links l
    WHERE l.link IN ('l1.source_event_ids', 'l2.source_event_ids', 'l2.member_ids')
      AND NOT EXISTS (SELECT 1 FROM owners o WHERE o.tenant = l.tenant AND o.id = l.to_id)
    ORDER BY ALL
"""

# Per event of a user's consolidated range (made no later than the newest event any of the
# user's memories rests on): covered by a memory, or why not.
COVERAGE = """
    WITH sources AS (
        SELECT tenant, user_id, UNNEST(source_event_ids) AS event_id FROM memories
        UNION SELECT tenant, user_id, UNNEST(source_event_ids) FROM insights),
    reach AS (SELECT tenant, user_id, max(event_id) AS upto FROM sources GROUP BY ALL)
    SELECT e.tenant, e.user_id, e.event_id, e.day,
           CASE WHEN s.event_id IS NOT NULL THEN 'covered'
                WHEN r.upto IS NULL OR e.event_id > r.upto THEN 'pending'
                WHEN e.content_type <> 'text' THEN 'not text'
                WHEN is_noise(e.content) THEN 'noise'
                ELSE 'uncovered' END AS status
    FROM events e
    LEFT JOIN (SELECT DISTINCT tenant, event_id FROM sources) s
           ON s.tenant = e.tenant AND s.event_id = e.event_id
    LEFT JOIN reach r ON r.tenant = e.tenant AND r.user_id = e.user_id
"""

ORPHAN_LINKS = f"""
    WITH links AS ({LINKS}), owners AS ({OWNERS})
    SELECT l.tenant, l.user_id, l.from_id, l.link, l.to_id FROM links l
    WHERE l.link IN ('relation.source', 'relation.target', 'entity.memory_ids')
      AND NOT EXISTS (SELECT 1 FROM owners o WHERE o.tenant = l.tenant AND o.id = l.to_id)
    ORDER BY ALL
"""

DUPLICATE_MEMORIES = """
    SELECT tenant, user_id,
           trim(regexp_replace(lower(content), '[^[:alnum:]]+', ' ', 'g')) AS normalised,
           count(*) AS copies, list(id ORDER BY id) AS ids
    FROM memories WHERE superseded_by IS NULL
    GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL
"""

# A tombstone is final for an event (never written again) and for a memory or insight
# forgotten or decayed; anything else (a re-derived memory) may come back on purpose.
TOMBSTONED_PRESENT = f"""
    WITH owners AS ({OWNERS}),
    final AS (SELECT * FROM tombstones
              WHERE target_kind = 'event'
                 OR (target_kind IN ('l1', 'l2') AND reason IN ('forgotten', 'decayed')))
    SELECT f.tenant, f.target_kind, f.target_id, f.reason, 'lake' AS place FROM final f
    WHERE EXISTS (SELECT 1 FROM owners o WHERE o.tenant = f.tenant AND o.id = f.target_id)
    UNION ALL
    SELECT tenant, layer, id, 'stray in an index', node_id || ':' || "index"
    FROM census_strays
    ORDER BY ALL
"""

INDEX_MISMATCH = """
    SELECT node_id, tenant, user_id, layer, rocksdb, tantivy, rocksdb_vectors, lancedb
    FROM census_counts WHERE rocksdb <> tantivy OR rocksdb_vectors <> lancedb
    ORDER BY ALL
"""

CROSS_LINKS = f"""
    WITH links AS ({LINKS}), owners AS ({OWNERS})
    SELECT l.tenant, l.user_id, l.from_id, l.link, l.to_id,
           o.tenant AS to_tenant, o.user_id AS to_user FROM links l
    JOIN owners o ON o.id = l.to_id
    WHERE (o.tenant <> l.tenant OR o.user_id <> l.user_id)
      AND NOT EXISTS (SELECT 1 FROM owners s WHERE s.id = l.to_id AND s.tenant = l.tenant
                      AND s.user_id = l.user_id)
    ORDER BY ALL
"""

SUPERSEDE_CYCLES = """
    WITH RECURSIVE walk(tenant, start, cur, path) AS (
        SELECT tenant, id, superseded_by, [id] FROM memories WHERE superseded_by IS NOT NULL
        UNION ALL
        SELECT w.tenant, w.start, m.superseded_by, list_append(w.path, w.cur) FROM walk w
        JOIN memories m ON m.tenant = w.tenant AND m.id = w.cur
        WHERE m.superseded_by IS NOT NULL AND NOT list_contains(w.path, w.cur))
    SELECT DISTINCT tenant, start AS id, 'cycle' AS problem FROM walk
    WHERE list_contains(path, cur)
    UNION ALL
    SELECT m.tenant, m.id, 'replacement ' || m.superseded_by || ' missing' FROM memories m
    WHERE m.superseded_by IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM memories r WHERE r.tenant = m.tenant AND r.id = m.superseded_by)
    ORDER BY ALL
"""

# Consolidation lag per user: the age of the oldest event not yet reflected in any memory.
CONSOLIDATION_LAG = f"""
    WITH coverage AS ({COVERAGE})
    SELECT tenant, user_id, count(*) AS pending_events,
           ($now_ms - min(ulid_ms(event_id)))::DOUBLE / 1000 AS lag_seconds
    FROM coverage WHERE status = 'pending' GROUP BY ALL ORDER BY lag_seconds DESC, tenant, user_id
"""

# Removals per day: a tombstone carries no time, so it is dated by the last event committed
# before it in the log (an ASOF join on log index); what is kept is the live memories per day.
FORGETTING = """
    WITH dated AS (
        SELECT t.target_kind, t.reason, coalesce(e.day, t.day) AS day FROM tombstones t
        ASOF LEFT JOIN (SELECT log_index, day FROM events) e ON t.log_index >= e.log_index),
    removed AS (SELECT day, count(*) FILTER (WHERE reason = 'decayed') AS decayed,
                       count(*) FILTER (WHERE reason = 'forgotten') AS forgotten,
                       count(*) FILTER (WHERE reason NOT IN ('decayed', 'forgotten')) AS retired
                FROM dated GROUP BY day),
    kept AS (SELECT day, count(*) AS kept FROM memories GROUP BY day)
    SELECT coalesce(r.day, k.day) AS day, coalesce(decayed, 0) AS decayed,
           coalesce(forgotten, 0) AS forgotten, coalesce(retired, 0) AS retired,
           coalesce(kept, 0) AS kept
    FROM removed r FULL JOIN kept k ON r.day = k.day ORDER BY day
"""

LAYERS_PER_DAY = """
    SELECT day, 'L0' AS layer, count(*) AS n FROM events GROUP BY day
    UNION ALL SELECT day, 'L1', count(*) FROM memories GROUP BY day
    UNION ALL SELECT day, 'L2', count(*) FROM insights GROUP BY day
    ORDER BY day, layer
"""

TOP_USERS = """
    WITH r AS (SELECT tenant, user_id, 'L0' AS layer FROM events
               UNION ALL SELECT tenant, user_id, 'L1' FROM memories
               UNION ALL SELECT tenant, user_id, 'L2' FROM insights)
    SELECT tenant, user_id, count(*) AS records, count(*) FILTER (WHERE layer = 'L0') AS l0,
           count(*) FILTER (WHERE layer = 'L1') AS l1, count(*) FILTER (WHERE layer = 'L2') AS l2
    FROM r GROUP BY ALL ORDER BY records DESC, tenant, user_id LIMIT $limit
"""

LAKE_INDEX = """
    SELECT max(log_index) FROM (
        SELECT max(log_index) AS log_index FROM events
        UNION ALL SELECT max(log_index) FROM memories
        UNION ALL SELECT max(log_index) FROM insights
        UNION ALL SELECT max(log_index) FROM tombstones)
"""
