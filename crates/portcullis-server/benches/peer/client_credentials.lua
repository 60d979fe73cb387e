-- One client-credentials token request per call, the same for both servers: HTTP Basic auth
-- from PEER_AUTH (the whole header value), form body, keep-alive.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("PEER_AUTH")
