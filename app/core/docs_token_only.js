// Swagger UI keeps the sign-in across reloads, token only (app/core/docs.py says why).
// TOKEN_KEY and SCHEME are defined by the page.
function savedToken() {
  try {
    const saved = JSON.parse(localStorage.getItem(TOKEN_KEY));
    if (saved && typeof saved.access_token === "string" && saved.expires_at > Date.now()) {
      return saved;
    }
  } catch (error) {
    // An unreadable entry is dropped below.
  }
  localStorage.removeItem(TOKEN_KEY);
  return null;
}

function TokenOnlyPersistence() {
  return {
    statePlugins: {
      auth: {
        wrapActions: {
          authorizeOauth2: (original) => (payload) => {
            const token = (payload && payload.token) || {};
            if (typeof token.access_token === "string") {
              const lifetime = Number(token.expires_in) || 0;
              localStorage.setItem(TOKEN_KEY, JSON.stringify({
                access_token: token.access_token,
                token_type: token.token_type || "bearer",
                expires_at: Date.now() + lifetime * 1000,
              }));
            }
            return original(payload);
          },
          logout: (original) => (names) => {
            localStorage.removeItem(TOKEN_KEY);
            return original(names);
          },
        },
      },
    },
  };
}

function signInAgain(ui) {
  const saved = savedToken();
  const schema = ui.specSelectors.securityDefinitions();
  if (!saved || !schema || !schema.get(SCHEME)) {
    return;
  }
  ui.authActions.authorizeOauth2({
    auth: {name: SCHEME, schema: schema.get(SCHEME).toJS()},
    token: {
      access_token: saved.access_token,
      token_type: saved.token_type,
      expires_in: Math.floor((saved.expires_at - Date.now()) / 1000),
    },
  });
}
