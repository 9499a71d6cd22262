// loa console: the only script of our own. A file picked in an input with data-fills is
// read in the browser and put into the named textarea (and its name into data-names),
// so forms stay plain url-encoded posts that central reads with a bounded limit.
document.addEventListener('change', function (event) {
  var input = event.target;
  if (!input.matches || !input.matches('input[type=file][data-fills]')) return;
  var file = input.files && input.files[0];
  if (!file) return;
  var target = document.querySelector(input.getAttribute('data-fills'));
  var name = document.querySelector(input.getAttribute('data-names'));
  var reader = new FileReader();
  reader.onload = function () {
    target.value = reader.result;
    if (name) name.value = file.name;
  };
  reader.readAsText(file);
});

// An audio upload: the file's bytes as the body of a PUT (central reads it chunk by chunk
// within its limit), the session's CSRF token in a header, progress shown as it goes.
document.addEventListener('submit', function (event) {
  var form = event.target;
  if (!form.matches || !form.matches('form[data-upload]')) return;
  event.preventDefault();
  var file = form.querySelector('input[type=file]').files[0];
  if (!file) return;
  var title = form.querySelector('#title').value;
  var progress = form.querySelector('progress');
  var result = form.querySelector('#upload-result');
  var csrf = JSON.parse(document.body.getAttribute('hx-headers') || '{}')['x-csrf-token'];
  var url = form.getAttribute('data-upload') + '?name=' + encodeURIComponent(file.name) +
    '&title=' + encodeURIComponent(title);
  var xhr = new XMLHttpRequest();
  xhr.open('PUT', url);
  xhr.setRequestHeader('x-csrf-token', csrf);
  xhr.upload.onprogress = function (e) {
    if (e.lengthComputable) progress.value = Math.round(100 * e.loaded / e.total);
  };
  xhr.onload = function () {
    result.textContent = xhr.responseText;
    result.className = xhr.status === 200 ? 'notice' : 'error';
    if (xhr.status === 200) { progress.value = 100; setTimeout(function () { location.reload(); }, 800); }
  };
  xhr.onerror = function () { result.textContent = 'network error'; result.className = 'error'; };
  xhr.send(file);
});
