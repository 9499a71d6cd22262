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
