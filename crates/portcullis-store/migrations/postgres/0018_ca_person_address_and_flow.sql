-- Conditional access for OpenID Connect applications and the device flow (issue 13).
--
-- person_ip: the address of the person's browser when the authorization code was issued (the
-- authorize / consent step). The code exchange and every refresh of the family it starts are
-- judged by it, not by the address of the relying party calling the token endpoint, so "App A
-- only from the office" restricts people. NULL on refresh tokens of the CLI: there the caller
-- of the token endpoint is the person's own device.
--
-- flow: 'device_code' for a family that started with the device authorization grant, so a
-- policy naming that flow also governs its refreshes; NULL for every other family.
ALTER TABLE authorization_codes ADD COLUMN person_ip TEXT;
ALTER TABLE refresh_tokens ADD COLUMN person_ip TEXT;
ALTER TABLE refresh_tokens ADD COLUMN flow TEXT;

-- Rows from before: the device grant is the CLI's only way to a refresh token; the person
-- behind an older code or OIDC family is best known by the sign-in of the session it came
-- from (never the relying party's address).
UPDATE refresh_tokens SET flow = 'device_code' WHERE client_id = 'portcullis-cli';
UPDATE refresh_tokens SET person_ip =
    (SELECT s.client_ip FROM sessions s WHERE s.id = refresh_tokens.session_id)
    WHERE client_id <> 'portcullis-cli';
UPDATE authorization_codes SET person_ip =
    (SELECT s.client_ip FROM sessions s WHERE s.id = authorization_codes.session_id);
