# The viewer page's wall (conf/html/wall.js) in a real browser: demo/run
# with 8 cameras serves it, headless Chromium shows it.  The page opens on
# the wall: a tile per camera, every tile's picture changing, all of them
# from one stream (the status counts one wall and no viewer); a click on a
# tile shows that camera's ordinary stream, the browser's back button the
# wall again.  Then frames under hostile keys (CR LF, quotes, <script>,
# markup, 100 kB) come into the demo's topic: the wall's part headers stay
# whole, the keys show as text, no script of theirs runs, and the wall's
# stream goes on.  After `nginx -s reload` the wall reconnects by itself;
# a page that is left closes its wall; where streams cannot be read, <img>
# tiles.  Screenshots stay in build/t-browser/ (wall-*.png).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

use Demo qw(poll artifacts);
use WebDriver;

plan skip_all => 'needs chromium and chromedriver (Debian: chromium, '
                 . 'chromium-driver; `make deps` installs them)'
    unless WebDriver::available();

my $port = $ENV{TEST_NGINX_PORT} || 1984;
my $art = artifacts();
my $bin = $ENV{TEST_NGINX_KAFKA_BIN} || Demo::root() . '/build';

my $demo = Demo->start(name => 'wall', port => $port,
                       env => { DEMO_DURATION => 900, DEMO_CAMERAS => 8 });

my $url = $demo->wait_url(300);
ok(($url // '') =~ m{^http://}, 'demo/run prints the URL to open')
    or do { diag $demo->output; done_testing; exit };

# the demo's directory is kept from run to run: this run's requests follow
my $log_from = -s "$demo->{dir}/logs/access.log" // 0;

my $wd = WebDriver->start(log => "$art/chromedriver-wall.log");

$wd->get($url);

sub page_value {
    my ($js, @args) = @_;
    return eval { $wd->script($js, @args) };
}

sub save_shot {
    my ($name) = @_;
    my $png = eval { $wd->screenshot } // return;
    open my $f, '>', "$art/wall-$name.png" or die "$art: $!";
    print $f $png;
    close $f;
}

sub dbtech { $demo->stream_status('dbtech') // {} }

# every tile: [key, frames drawn, a fingerprint of its canvas's pixels]
my $TILES = <<'JS';
    var out = [];
    document.querySelectorAll('#wall .tile').forEach(function (t) {
        var c = t.querySelector('canvas'), h = 2166136261, d, i;
        if (!c || c.width < 32) { out.push([t.dataset.key, 0, '']); return; }
        d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (i = 0; i < d.length; i += 3) {
            h = Math.imul(h ^ d[i], 16777619) >>> 0;
        }
        out.push([t.dataset.key, +t.dataset.frames || 0,
                  c.width + 'x' + c.height + ':' + h]);
    });
    return out;
JS

sub tiles {
    my $t = page_value($TILES) || [];
    return { map { ($_->[0] => { frames => $_->[1], print => $_->[2] }) }
             @$t };
}

# tiles of the cameras cam1 .. cam8 whose pixels all changed since $before
sub all_changed {
    my ($before) = @_;
    return poll(30, sub {
        my $now = tiles();
        my @same = grep { !$now->{$_} || $now->{$_}{print} eq $before->{$_}{print} }
                   map { "cam$_" } 1 .. 8;
        return @same ? undef : $now;
    });
}


# 1. the wall: at least 8 tiles, each drawn, all from one stream

my $first = poll(90, sub {
    my $t = tiles();
    my @drawn = grep { $t->{"cam$_"} && $t->{"cam$_"}{frames} > 0
                       && $t->{"cam$_"}{print} ne '' } 1 .. 8;
    return @drawn == 8 ? $t : undef;
});

save_shot('1-first');

ok($first, 'the page opens on the wall: a tile for each of the 8 cameras, '
           . 'each with a picture')
    or diag 'tiles: ' . explain(tiles()) . ', state '
            . (page_value('return document.getElementById("wall-state")'
                          . '.textContent') // '?')
            . "\n" . $demo->output;

is(page_value('return document.getElementById("wall").dataset.kind'),
   'stream', 'the tiles are drawn from the wall\'s stream (fetch), not <img>');
is(page_value('return document.querySelectorAll("#wall img").length'), 0,
   '... and no tile is an <img> stream');

my $later = all_changed($first // {});
save_shot('2-later');
ok($later, 'every tile\'s picture changes')
    or diag explain [grep { tiles()->{$_}{print} eq ($first->{$_}{print} // '') }
                     map { "cam$_" } 1 .. 8];

my $one = poll(10, sub {
    my $s = dbtech();
    return ($s->{walls} // 0) == 1 && ($s->{viewers} // -1) == 0 ? $s : undef;
});
ok($one, 'nginx counts one stream for the whole wall: 1 wall, 0 viewers')
    or diag explain dbtech();



# 2. a click opens the camera (its ordinary stream), back returns

$wd->click('#wall .tile[data-key="cam3"]');

my $single = poll(20, sub {
    page_value('return location.hash') eq '#cam=cam3'
        && page_value('return document.body.dataset.view') eq 'single'
        && page_value('return document.getElementById("wall").hidden')
        && (page_value('return document.getElementById("stream").src') // '')
           =~ m{/cam\?id=cam3(?:&|$)}
        && page_value('return document.getElementById("stream")'
                      . '.naturalWidth') == 640
});
save_shot('3-camera');
ok($single, 'a click on camera 3 shows its stream, full size (640 wide)')
    or diag 'hash ' . (page_value('return location.hash') // '?')
            . ', src ' . (page_value('return document.getElementById('
                                     . '"stream").src') // '?');

my $swapped = poll(15, sub {
    my $s = dbtech();
    return ($s->{walls} // -1) == 0 && ($s->{viewers} // 0) == 1 ? $s : undef;
});
ok($swapped, '... the wall\'s stream is closed: 0 walls, 1 viewer')
    or diag explain dbtech();

$wd->session_call(POST => '/back', {});

my $back = poll(20, sub {
    page_value('return document.body.dataset.view') eq 'wall'
        && !page_value('return document.getElementById("wall").hidden')
        && page_value('return document.getElementById("single").hidden')
});
ok($back, 'back: the wall again');

my $again = all_changed(tiles());
save_shot('4-back');
ok($again, '... every tile moving again');

ok(poll(15, sub {
    my $s = dbtech();
    ($s->{walls} // -1) == 1 && ($s->{viewers} // -1) == 0;
}), '... from one stream again: 1 wall, 0 viewers')
    or diag explain dbtech();


# 3. hostile keys: into the demo's topic, a frame of camera 1 under each

my %hostile = (
    crlf => "cam\r\nX-Evil: 1",
    quotes => q{cam"'`quotes},
    script => '<script>window.__pwned = "script"</script>',
    markup => '<img src=x onerror="window.__pwned = \'img\'">',
    big => 'k' x 102400,
);

my $jpeg = $demo->get('snapshot?id=cam1')->content;
open my $addr, '<', "$demo->{dir}/broker.addr"
    or die "$demo->{dir}/broker.addr: $!";
my $brokers = <$addr>;
chomp $brokers;

sub field { pack('N', length $_[0]) . $_[0] }

sub hostile_round {
    open my $p, '|-', "$bin/kafka-produce", '--', $brokers, 'dbtech', '-1'
        or die "kafka-produce: $!";
    binmode $p;
    print $p field($hostile{$_}), field($jpeg), pack('N', 0)
        for sort keys %hostile;
    close $p;
    return $? == 0;
}

local $SIG{PIPE} = 'IGNORE';
ok(hostile_round(), 'frames under hostile keys produced');

# and again every half second while the page and the stream are looked
# at: a wall that begins on a worker that did not read the topic finds
# each key's latest frame in the partitions' last messages only
my $feeder = fork // die "fork: $!";
if ($feeder == 0) {
    for (1 .. 120) {
        hostile_round();
        sleep 0.5;
    }
    POSIX::_exit(0);
}

END {
    if ($feeder) {
        kill TERM => $feeder;
        waitpid $feeder, 0;
    }
}

# what the page should show for each key: control bytes as U+FFFD
my %shown = map { my $t = $hostile{$_}; $t =~ s/[\x00-\x1f\x7f]/\x{fffd}/g;
                  ($_ => $t) } qw(crlf quotes script markup);

my $labels = poll(30, sub {
    my $l = page_value('return Array.prototype.map.call('
                       . 'document.querySelectorAll("#wall .tile .key"),'
                       . ' function (e) { return e.textContent; })') || [];
    my %have = map { ($_ => 1) } @$l;
    return (grep { !$have{$_} } values %shown) ? undef : $l;
});
save_shot('5-hostile');
ok($labels, 'a tile for each hostile key, the key shown as its text')
    or diag explain page_value('return Array.prototype.map.call('
                               . 'document.querySelectorAll("#wall .tile .key"),'
                               . ' function (e) { return e.textContent; })');

is(page_value('return window.__pwned === undefined'), 1,
   'no script of a key ran');
is(page_value('return document.querySelectorAll("#wall script, #wall '
              . '[onerror], #wall .key *").length'), 0,
   'no key became markup');
ok(!grep({ length > 4096 } @{ $labels || [] }),
   'the 100 kB key has no tile (longer keys than 4096 bytes have none)');
is(page_value('return +(document.getElementById("wall").dataset.reconnects'
              . ' || 0)'), 0,
   'the wall\'s stream never broke: no reconnect');
ok(all_changed(tiles()), '... and every camera\'s tile still moves');

# the wall's own bytes: every part's header lines whole, each key
# percent-encoded on its X-Key line
my ($parts, $odd, %keys) = (0, 0);
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 5) or die "connect: $!";
    print $s "GET /wall HTTP/1.0\r\nHost: localhost\r\n\r\n";
    my ($buf, $deadline) = ('', time + 4);
    while (time < $deadline) {
        my $rin = '';
        vec($rin, fileno $s, 1) = 1;
        next unless select($rin, undef, undef, 0.2);
        last unless sysread $s, $buf, 1 << 20, length $buf;
    }
    close $s;

    $buf =~ s/\A.*?\r\n\r\n//s;
    while ($buf =~ /--kafka-stream-frame\r\n((?:[^\r\n]*\r\n)+?)\r\n/g) {
        my @lines = split /\r\n/, $1;
        next if !@lines;
        $parts++;
        my @names = sort map { /^([^:]+):/ ? lc $1 : '?' } @lines;
        $odd++ if "@names" ne 'content-length content-type x-key x-timestamp'
                  || !grep { /^X-Key: [A-Za-z0-9._~%-]+$/ } @lines;
        for (@lines) {
            $keys{$1} = 1 if /^X-Key: (.*)$/;
        }
    }
}
cmp_ok($parts, '>=', 8, "the wall's stream read directly: $parts parts");
is($odd, 0, '... each with exactly X-Key, Content-Type, Content-Length, '
            . 'X-Timestamp, the key percent-encoded');
ok($keys{'cam%0D%0AX-Evil%3A%201'} && $keys{'%3Cscript%3Ewindow.__pwned%20%3D%20%22script%22%3C%2Fscript%3E'},
   '... the hostile keys among them, percent-encoded')
    or diag explain [sort keys %keys];

# a hostile key's tile opens too: its camera from the wall's stream
$wd->click('#wall .tile[data-key="%3Cscript%3Ewindow.__pwned%20%3D%20%22script%22%3C%2Fscript%3E"]');
my $solo = poll(20, sub {
    page_value('return document.body.dataset.view') eq 'single'
        && (page_value('return +(document.querySelector("#solo .tile")'
                       . ' || {dataset: {}}).dataset.frames || 0') // 0) > 0
});
save_shot('6-hostile-camera');
ok($solo, 'a click on the <script> key\'s tile shows that camera');
is(page_value('return window.__pwned === undefined'), 1,
   '... and still no script of a key ran');

$wd->session_call(POST => '/back', {});
ok(poll(20, sub { page_value('return document.body.dataset.view') eq 'wall' }),
   'back to the wall');

kill TERM => $feeder;
waitpid $feeder, 0;
$feeder = 0;


# after `nginx -s reload` the wall reconnects by itself, as one camera does

my @old = $demo->worker_pids;
ok($demo->reload, 'nginx -s reload');
my %old = map { $_ => 1 } @old;

my $rewalled = poll(30, sub {
    my $s = $demo->status or return undef;
    my @pids = map { $_->{pid} } @{ $s->{workers} };
    return undef if !@pids || grep { $old{$_} } @pids;
    my ($d) = grep { $_->{topic} eq 'dbtech' } @{ $s->{streams} };
    return $d && $d->{walls} == 1 ? $s : undef;
});
ok($rewalled, 'the new workers count the page\'s wall again')
    or diag explain dbtech();
cmp_ok(page_value('return +(document.getElementById("wall").dataset'
                  . '.reconnects || 0)') // 0, '>=', 1,
       '... the page reconnected on its own')
    and note 'reason: ' . (page_value('return document.getElementById('
                                      . '"wall").dataset.reason') // '?');
ok(all_changed(tiles()), '... and every tile moves again');


# 4. a browser that cannot read streams (?wall=img makes the page act as
#    one): a plain <img> per camera, the first four streams (a browser
#    opens six connections to a host), the others snapshots, refreshed

# leaving the page ends its wall
$wd->get('about:blank');
ok(poll(20, sub { (dbtech()->{walls} // -1) == 0 }),
   'a page that goes away closes its wall')
    or diag explain dbtech();

$wd->get("${url}?wall=img");

my $IMGS = 'return Array.prototype.map.call('
           . 'document.querySelectorAll("#wall .tile img"), function (i) {'
           . ' return [i.closest(".tile").dataset.key, i.dataset.kind,'
           . ' i.naturalWidth, i.src]; })';

my $images = poll(30, sub {
    my $i = page_value($IMGS) || [];
    my @shown = grep { $_->[0] =~ /^cam[1-8]$/ && $_->[2] > 0 } @$i;
    return @shown == 8 ? $i : undef;
});
save_shot('7-img-tiles');
ok($images, 'the fallback: an <img> tile for each camera, each showing it')
    or diag explain page_value($IMGS);
is(page_value('return document.getElementById("wall").dataset.kind'),
   'img', '... which the page says it uses');
is(join(' ', map { $_->[1] } @{ $images || [] }),
   join(' ', ('stream') x 4, ('snapshot') x (@{ $images || [] } - 4)),
   '... four streams, the others snapshots');
my $refreshed = $images && poll(15, sub {
    my %now = map { ($_->[0] => $_->[3]) } @{ page_value($IMGS) || [] };
    return !grep { $_->[1] eq 'snapshot' && $now{$_->[0]} eq $_->[3] }
           @$images;
});
ok($refreshed, '... each snapshot tile asking for a newer one');
ok(poll(15, sub {
    my $s = dbtech();
    ($s->{walls} // -1) == 0 && ($s->{viewers} // 0) == 4;
}), '... nginx counts no wall and the four streams')
    or diag explain dbtech();


# 5. stopping the demo leaves nothing behind; what the server logged

$wd->quit;

ok(defined $demo->stop('TERM'), 'demo/run exits on SIGTERM');
is_deeply([$demo->leftovers], [], 'nothing it started is left running');

# the browser's requests (the test's own have no User-Agent): the wall at
# the start, after each "back", and the <script> key's camera from a wall
# of that key; camera 3 from its ordinary stream
my %asked;
if (open my $log, '<', "$demo->{dir}/logs/access.log") {
    seek $log, $log_from, 0;
    while (<$log>) {
        next if !/HeadlessChrome/ || !m{"GET (/\S*) HTTP};
        my $uri = $1;
        $asked{$uri =~ m{^/wall\?keys=} ? 'wall of one key'
               : $uri =~ m{^/wall(?:\?|$)} ? 'wall'
               : $uri =~ m{^/cam\?id=cam3(?:&|$)} ? 'camera 3' : 'other'}++;
    }
}
is($asked{wall} // 0, 4,
   'the access log: 4 walls (the start, 2 backs, the reconnect)');
is($asked{'wall of one key'} // 0, 1, '... 1 wall of the <script> key');
cmp_ok($asked{'camera 3'} // 0, '>=', 1, '... camera 3\'s stream');

done_testing;
