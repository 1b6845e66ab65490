-- pg_tenancy: tenancy.postgrest_pre_request(), PostgREST's db-pre-request hook
-- (docs/clients.md, "PostgREST").
--
-- Comes after tenancy.set_context() (Rust), which it calls: see src/install.rs. Privileges:
-- privileges.sql (grant_app).

-- PostgREST's db-pre-request hook: verify the request's bearer token and set the context
-- for the request's transaction. No Authorization header: no context (zero rows). PostgREST
-- passes headers, lower-cased, as JSON in request.headers.
CREATE FUNCTION tenancy.postgrest_pre_request() RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    headers text := pg_catalog.current_setting('request.headers', true);
    auth text;
BEGIN
    IF headers IS NULL OR headers OPERATOR(pg_catalog.=) '' THEN
        RETURN;
    END IF;
    -- Anyone may SET request.headers: bound it, and never let the JSON parser's error (which
    -- quotes the offending token whole) carry the caller's text into the log.
    IF pg_catalog.octet_length(headers) OPERATOR(pg_catalog.>) 65536 THEN
        RAISE EXCEPTION USING ERRCODE = '54000',
            MESSAGE = 'pg_tenancy: request.headers is longer than 65536 bytes';
    END IF;
    BEGIN
        auth := headers::pg_catalog.json OPERATOR(pg_catalog.->>) 'authorization';
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'pg_tenancy: request.headers is not JSON';
    END;
    IF auth IS NULL OR auth OPERATOR(pg_catalog.=) '' THEN
        RETURN;
    END IF;
    IF pg_catalog.lower(pg_catalog.left(auth, 7)) OPERATOR(pg_catalog.<>) 'bearer ' THEN
        RAISE EXCEPTION USING ERRCODE = '28000',
            MESSAGE = 'pg_tenancy: token refused: the Authorization header is not a Bearer token',
            HINT = 'send Authorization: Bearer <token>';
    END IF;
    PERFORM tenancy.set_context(pg_catalog.btrim(pg_catalog.substr(auth, 8)), true);
END
$$;
