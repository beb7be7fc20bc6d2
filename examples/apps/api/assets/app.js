fetch("/version").then((r) => r.text()).then((t) => { document.title = t; });
