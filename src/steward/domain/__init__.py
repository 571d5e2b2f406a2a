"""Pure domain types: entities, enums, URIs, the search grammar. No I/O here."""
