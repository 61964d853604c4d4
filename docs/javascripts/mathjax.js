// MathJax configuration for pymdownx.arithmatex (generic mode). It must load
// before the vendored MathJax (javascripts/vendor/mathjax/tex-svg.js, 3.2.2),
// which renders all mathematics locally: no network access is needed.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  }
};

// Re-typeset after mkdocs-material's instant navigation swaps the page, if
// that feature is enabled; without it the initial typeset is enough.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.startup && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
