"""scripts/lib/code_size.py: finds each function and its length, and
control/ and switch/ hold no file over 800 lines and no function over 80
(issue 16's limit, kept from now on).

  /usr/bin/python3 -m pytest -q scripts/lib/test_code_size.py
"""
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import code_size  # noqa: E402

SAMPLE = """\
// A comment with a brace { that opens nothing.
namespace tandem {
namespace {

constexpr int kTable[] = {
    1, 2, 3,
};

struct Point {
  int x = 0;
  int Sum() const {
    return x + 1;
  }
};

}  // namespace

/* A block comment {
   over two lines } */
int Short(int a) {
  return a;
}

absl::Status Long(const std::string& a,
                  int b) {
  auto f = [&](int c) {
    return c + b;
  };
  if (a == "{") {
    return absl::OkStatus();
  }
  return absl::InternalError("}");
}

Thing::Thing(int a)
    : a_(a),
      b_(a) {
  Start();
}

}  // namespace tandem
"""


def test_each_function_is_found_with_its_length_and_first_line():
    found = {sig.split("(")[0].split()[-1]: (line, n)
             for line, n, sig in code_size.functions(SAMPLE)}
    assert found == {
        "Sum": (11, 3),
        "Short": (20, 3),
        "Long": (25, 9),  # from its opening brace; the lambda is inside it
        "Thing::Thing": (37, 3),
    }


def test_a_long_function_and_a_long_file_are_reported(tmp_path):
    body = "\n".join(f"  x += {i};" for i in range(90))
    (tmp_path / "a.cc").write_text(f"void Big(int& x) {{\n{body}\n}}\n" + "\n" * 720)
    out = subprocess.run([sys.executable, str(HERE / "code_size.py"), str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any("a.cc: 812 lines" in line for line in lines), out.stdout
    assert any("a.cc:1: function of 92 lines" in line and "void Big" in line
               for line in lines), out.stdout


def test_control_and_switch_keep_the_limits():
    over = code_size.check(code_size.sources([code_size.REPO / "control",
                                              code_size.REPO / "switch"]), 800, 80)
    assert over == [], "\n".join(over)
