"""The door screen page: one self-contained HTML file (no external assets) polling /state.json."""

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>
  html, body { margin: 0; height: 100%; font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
               background: #1d2330; color: #fff; overflow: hidden; cursor: none; }
  main { display: flex; flex-direction: column; align-items: center; justify-content: center;
         height: 100%; text-align: center; padding: 0 4vw; box-sizing: border-box;
         transition: background-color 0.3s; }
  #icon { font-size: 14vh; line-height: 1; margin-bottom: 3vh; }
  #title { font-size: 9vh; font-weight: bold; margin: 0; }
  #subtitle { font-size: 5vh; margin-top: 2.5vh; opacity: 0.9; }
  #notice { position: fixed; top: 2vh; width: 100%; text-align: center; font-size: 3vh; color: #ffd27a; }
  footer { position: fixed; bottom: 2vh; width: 100%; text-align: center; font-size: 3vh; opacity: 0.6; }
  .idle { background: #1d2330; } .in { background: #1e7d46; } .out { background: #1f5f99; }
  .again { background: #3f5a6e; } .unknown { background: #a05a12; } .hint { background: #4a3f73; }
  .offline { background: #7a1f1f; } .enrol { background: #6a4c93; }
</style>
</head>
<body>
<main id="screen" class="idle">
  <div id="icon">&#9786;</div>
  <p id="title">Look at the camera</p>
  <div id="subtitle">to check in or out</div>
</main>
<div id="notice"></div>
<footer><span id="clock"></span> &middot; {{TITLE}}</footer>
<script>
  var ICONS = {idle: "\\u263A", "in": "\\u2714", out: "\\u2714", again: "\\u2714",
               unknown: "?", hint: "\\u2192", offline: "!", enrol: "\\u25C9"};
  var failures = 0;
  function show(s) {
    document.getElementById("screen").className = s.kind;
    document.getElementById("icon").textContent = ICONS[s.kind] || "";
    document.getElementById("title").textContent = s.title;
    document.getElementById("subtitle").textContent = s.subtitle || "";
    document.getElementById("notice").textContent = s.notice || "";
  }
  function tick() {
    var now = new Date();
    document.getElementById("clock").textContent =
      ("0" + now.getHours()).slice(-2) + ":" + ("0" + now.getMinutes()).slice(-2);
  }
  function poll() {
    fetch("state.json", {cache: "no-store"}).then(function (r) { return r.json(); })
      .then(function (s) { failures = 0; show(s); })
      .catch(function () {
        failures += 1;
        if (failures >= 6) show({kind: "offline", title: "Kiosk not running", subtitle: "Please see the admin"});
      })
      .then(function () { setTimeout(poll, 500); });
  }
  tick(); setInterval(tick, 10000); poll();
</script>
</body>
</html>
"""
