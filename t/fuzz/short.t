# A short run of every libFuzzer target (make fuzz runs them longer): the
# module's pure functions on random and mutated input, under ASan/UBSan.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

my $dir = ($ENV{TEST_NGINX_KAFKA_BIN} || 'build') . '/fuzz';
my @targets = grep { -x $_ && -f $_ } glob("$dir/*");

plan skip_all => "no fuzz targets in $dir (make fuzzers)" if !@targets;

for my $target (@targets) {
    (my $name = $target) =~ s{.*/}{};
    my @seeds = -d "fuzz/seeds/$name" ? ("fuzz/seeds/$name") : ();

    # libFuzzer writes the inputs it finds into the first corpus
    # directory: a scratch one, so the committed seeds stay as they are
    my $scratch = tempdir(CLEANUP => 1);
    my $out = `$target -runs=100000 -seed=1 $scratch @seeds 2>&1`;

    is($?, 0, "fuzz target $name: no crash, leak or UB in 100000 runs")
        or diag($out);
    like($out, qr/Done 100000 runs/, "fuzz target $name ran to the end");
}

done_testing();
