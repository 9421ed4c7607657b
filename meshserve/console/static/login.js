/*
 * The console's login page (meshserve/console/session.py): the credential goes once to
 * POST /console/session in the header the mesh checks (a JWT as Authorization: Bearer, anything
 * else as x-api-key); the answer sets the login cookie, and the console opens. Nothing from the
 * server is put into the page as markup.
 */
(function () {
  "use strict";
  const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
  const REFUSED = "The mesh did not accept this key or token: it is unknown, its signature is wrong, " +
    "it has expired, or it was issued for another audience. Check it and paste it again.";

  function say(text, kind) {
    const box = document.getElementById("login-result");
    const line = document.createElement("div");
    line.className = kind;
    line.textContent = text;
    box.replaceChildren(line);
  }

  async function tryLogin(credential, header) {
    const headers = {"Content-Type": "application/json"};
    headers[header] = header === "Authorization" ? `Bearer ${credential}` : credential;
    const response = await fetch("/console/session", {method: "POST", headers, body: "{}",
                                                      credentials: "same-origin", cache: "no-store"});
    let body = {};
    try { body = await response.json(); } catch (e) { body = {}; }
    return {status: response.status, body};
  }

  async function logIn(event) {
    event.preventDefault();
    const credential = document.getElementById("credential").value.trim();
    if (!credential) { say("Paste your API key or token first.", "error"); return; }
    say("Checking…", "note");
    // A JWT is tried as a bearer token first, then as a key (a mesh with API keys only).
    const headers = JWT.test(credential) ? ["Authorization", "x-api-key"] : ["x-api-key", "Authorization"];
    let answer = null;
    try {
      for (const header of headers) {
        answer = await tryLogin(credential, header);
        if (answer.status !== 401) { break; }
      }
    } catch (error) { say(`The mesh cannot be reached: ${error.message || error}`, "error"); return; }
    if (answer.status === 200) {
      document.getElementById("credential").value = "";
      location.assign("/console/" + location.hash);  // back to the page the person asked for
    } else if (answer.status === 401) {
      say(REFUSED, "error");
    } else {
      say(answer.body.error || `The mesh refused the login (HTTP ${answer.status}).`, "error");
    }
  }

  function start() {
    const params = new URLSearchParams(location.search);
    document.getElementById("login-note").textContent = params.has("out")
      ? "You are logged out." : "This mesh asks who you are before it shows its console.";
    document.getElementById("login").addEventListener("submit", logIn);
    document.getElementById("credential").focus();
  }
  document.addEventListener("DOMContentLoaded", start);
})();
