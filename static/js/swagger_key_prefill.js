// Swagger UI's Authorize dialog with the key field started: the signed-in developer's key
// prefix (never a secret, which only they have), so they paste or type the rest. Pasting a
// whole key replaces the prefix instead of doubling it. Data from the script tag's attributes,
// no inline script (the Content-Security-Policy allows only files from this site).
(() => {
  const script = document.currentScript;
  const start = script.dataset.keyStart;
  const placeholder = script.dataset.keyPlaceholder;
  // React listens for input events and reads the value through the prototype's setter, so the
  // value is set through that setter and announced like a keystroke.
  const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;

  const prefill = (input) => {
    if (input.dataset.mdkPrefilled) return;
    input.dataset.mdkPrefilled = "true";
    input.placeholder = placeholder;
    input.setAttribute("aria-description", `Your key starts ${start}; paste the whole key or type the rest.`);
    if (input.value === "") {
      setValue.call(input, start);
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }
    input.addEventListener("paste", (event) => {
      const text = (event.clipboardData || window.clipboardData).getData("text");
      if (text.trim().startsWith("mdk_")) input.select();
    });
  };

  const scan = () => {
    document
      .querySelectorAll(".auth-container input[type=text], .auth-container input[type=password]")
      .forEach(prefill);
  };
  new MutationObserver(scan).observe(document.body, { childList: true, subtree: true });
})();
