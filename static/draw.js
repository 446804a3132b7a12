// Drawing pad for the "your own digit" page. Strokes are dark on a transparent canvas,
// which the server treats as ink on a light background. Pointer events cover mouse,
// touch and pen alike.
(function () {
  "use strict";

  var box = document.getElementById("pad-box");
  var canvas = document.getElementById("pad");
  if (!box || !canvas || !canvas.getContext) {
    return;
  }
  box.hidden = false;

  var context = canvas.getContext("2d");
  var widthInput = document.getElementById("stroke-width");
  var drawing = false;
  var hasInk = false;
  var last = null;
  var predictTimer = null;

  function position(event) {
    var rect = canvas.getBoundingClientRect();
    return {
      x: (event.clientX - rect.left) * (canvas.width / rect.width),
      y: (event.clientY - rect.top) * (canvas.height / rect.height),
    };
  }

  function strokeTo(point) {
    context.lineCap = "round";
    context.lineJoin = "round";
    context.strokeStyle = "#000";
    context.lineWidth = Number(widthInput.value);
    context.beginPath();
    context.moveTo(last.x, last.y);
    context.lineTo(point.x, point.y);
    context.stroke();
    last = point;
    hasInk = true;
  }

  canvas.addEventListener("pointerdown", function (event) {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = true;
    last = position(event);
    strokeTo({ x: last.x + 0.01, y: last.y });
  });
  canvas.addEventListener("pointermove", function (event) {
    if (drawing) {
      event.preventDefault();
      strokeTo(position(event));
    }
  });
  function endStroke() {
    if (!drawing) {
      return;
    }
    drawing = false;
    // Predict shortly after the pen lifts, so a digit drawn in several strokes is
    // sent once the user pauses.
    clearTimeout(predictTimer);
    predictTimer = setTimeout(predict, 400);
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  document.getElementById("clear").addEventListener("click", function () {
    clearTimeout(predictTimer);
    context.clearRect(0, 0, canvas.width, canvas.height);
    hasInk = false;
    var result = document.getElementById("result");
    if (result) {
      result.innerHTML = '<p class="hint">Draw a digit or upload a photo of one; the prediction appears here.</p>';
    }
  });
  document.getElementById("predict-drawing").addEventListener("click", predict);

  function csrfHeaders() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? { "X-CSRF-Token": meta.content } : {};
  }

  function predict() {
    canvas.toBlob(function (blob) {
      var form = new FormData();
      form.append("image", blob, "drawing.png");
      var headers = Object.assign({ "HX-Request": "true", "HX-Target": "result" }, csrfHeaders());
      fetch(canvas.closest("main").querySelector("#upload-form").action, {
        method: "POST",
        body: form,
        headers: headers,
        credentials: "same-origin",
      })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var result = document.getElementById("result");
          result.outerHTML = html;
          canvas.dataset.predictions = String(Number(canvas.dataset.predictions || 0) + 1);
        })
        .catch(function () {
          document.getElementById("result").innerHTML =
            '<p class="message" role="alert">The server could not be reached. Try again.</p>';
        });
    }, "image/png");
  }
})();
