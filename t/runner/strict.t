# Self-test of our Test::Nginx runner: it is never more lenient than
# upstream's, so a test that passes here also passes there.  Each case is
# a test file run with the runner in a child perl; where upstream stops
# the whole run (BAIL_OUT), ours must too, with upstream's reason.
#
#   - a block of several requests whose expected section is not an array
#   - a file a test leaves in the server root, which upstream cannot
#     remove between blocks

use strict;
use warnings;

use File::Temp qw(tempdir);
use FindBin;
use Test::More;

my $lib = "$FindBin::Bin/../lib";
my $dir = tempdir('runner-strict-XXXXXX', TMPDIR => 1, CLEANUP => 1);

$ENV{TEST_NGINX_SERVROOT} = "$dir/servroot";


# runs a test file of blocks; returns its TAP and exit status
sub run_blocks {
    my ($name, $blocks) = @_;

    open my $t, '>', "$dir/$name.t" or die $!;
    print $t "use Test::Nginx::Socket 'no_plan';\n\nno_shuffle();\n"
             . "run_tests();\n\n__DATA__\n\n$blocks";
    close $t;

    my $tap = `$^X -I$lib $dir/$name.t 2>&1`;
    return ($tap, $? >> 8);
}


# 1. several requests, one expected section a scalar: upstream bails out

for my $section ('response_headers', 'response_body', 'error_code',
                 'response_body_like')
{
    my %value = (
        response_headers => "Content-Type: text/plain\n",
        response_body => "hello\n",
        error_code => "200\n",
        response_body_like => "^hello\n",
    );

    my ($tap, $status) = run_blocks("scalar-$section", <<_EOT_);
=== TEST 1: two requests, $section not an array
--- config
    location /t { default_type text/plain; return 200 "hello\\n"; }
--- request eval
["GET /t", "GET /t"]
--- $section
$value{$section}
_EOT_

    like($tap, qr/^Bail out!\s+TEST 1: two requests, \Q$section\E not an array - You asked for many requests, the expected results should be arrays as well\.$/m,
         "two requests with a scalar --- $section: the run bails out");
    isnt($status, 0, "  and the test file fails");
}

# the same with arrays passes: the strictness costs a correct block nothing
{
    my ($tap, $status) = run_blocks('arrays', <<'_EOT_');
=== TEST 1: two requests, every section an array
--- config
    location /t { default_type text/plain; return 200 "hello\n"; }
--- request eval
["GET /t", "GET /t"]
--- response_headers eval
[("Content-Type: text/plain") x 2]
--- response_body eval
["hello\n", "hello\n"]
--- error_code eval
[200, 200]
_EOT_

    unlike($tap, qr/^(?:not ok|Bail out!)/m, 'arrays for both requests pass');
    like($tap, qr/^ok \d+ - TEST 1: .* - header Content-Type ok$/m,
         '  and each request is checked');
    is($status, 0, '  and the test file passes');
}


# 2. a file left in the server root stops the run at the next block

# two blocks; the first runs $init
sub two_blocks {
    my ($init) = @_;

    $init = defined $init ? "--- init\n$init" : '';

    return <<_EOT_;
=== TEST 1: one
--- config
    location /t { return 200 "one\\n"; }
$init--- request
GET /t
--- response_body
one

=== TEST 2: two
--- config
    location /t { return 200 "two\\n"; }
--- request
GET /t
--- response_body
two
_EOT_
}

{
    my ($tap, $status) = run_blocks('leftover', two_blocks(<<'_EOI_'));
open my $out, '>', "$Test::Nginx::Util::ServRoot/leftover.out" or die $!;
close $out;
_EOI_

    like($tap, qr/^ok \d+ - TEST 1: one - response_body/m,
         'the block that leaves a file in the server root passes itself');
    like($tap, qr/^Bail out!\s+Can't remove \Q$dir\E\/servroot \(not empty\?\).*leftover\.out/m,
         'the next block bails out, naming the file');
    unlike($tap, qr/TEST 2: two - response_body/, '  before its requests');
    isnt($status, 0, '  and the test file fails');
}

# what the runner itself writes goes with the server root, run after run:
# a second run of a passing file starts clean
unlink "$dir/servroot/leftover.out";
for my $run (1, 2) {
    my ($tap, $status) = run_blocks('clean', two_blocks());
    like($tap, qr/^ok \d+ - TEST 2: two - response_body/m,
         "a clean file, run $run: its second block runs");
    unlike($tap, qr/^(?:not ok|Bail out!)/m, '  nothing fails');
    is($status, 0, '  and it passes');
}

done_testing();
