package BenchLoad;

# Helpers for the tests of build/mjpeg-load: real PNG and JPEG frames made
# with ffmpeg, multipart bodies built from them, a scripted HTTP server
# (forked, one process per connection, on an ephemeral loopback port) and
# a way to run mjpeg-load and read its JSON summary and per-viewer CSV.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use IPC::Run qw(run timeout);
use JSON::PP qw(decode_json);
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);

our @EXPORT = qw(load_bin media part final_boundary response_head chunked
                 serve stop_server server_log wait_for run_load
                 read_csv put tmpdir);

my $ROOT = abs_path(dirname(__FILE__) . '/../..');
my $TMP = tempdir('mjpeg-load-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my %MEDIA;

sub tmpdir { $TMP }


# build/mjpeg-load, built first if it is not there (make builds it too)

sub load_bin {
    my $bin = $ENV{MJPEG_LOAD} // "$ROOT/build/mjpeg-load";

    if (!-x $bin) {
        system('make', '--no-print-directory', '-C', $ROOT,
               'build/mjpeg-load') == 0
            or die "cannot build $bin\n";
    }

    return $bin;
}


# one real frame, 'png' or 'jpeg', made by ffmpeg at test time

sub media {
    my ($fmt, $size) = @_;
    $size //= '96x72';

    my $key = "$fmt-$size";
    return $MEDIA{$key} if exists $MEDIA{$key};

    my $file = "$TMP/frame-$key." . ($fmt eq 'png' ? 'png' : 'jpg');
    my @cmd = ('ffmpeg', '-hide_banner', '-loglevel', 'error', '-y',
               '-f', 'lavfi', '-i', "testsrc=size=$size:rate=1",
               '-frames:v', '1', $file);

    my ($out, $err) = ('', '');

    run(\@cmd, \undef, \$out, \$err, timeout(60))
        or die "ffmpeg failed: $err\n";

    open(my $fh, '<:raw', $file) or die "$file: $!\n";
    local $/;
    $MEDIA{$key} = <$fh>;
    close($fh);

    return $MEDIA{$key};
}


# one part: boundary line, headers, data and the CRLF after it;
# options: boundary, type, length (a lying Content-Length), ts, headers

sub part {
    my ($data, %o) = @_;

    my $b = $o{boundary} // 'frame';
    my $type = $o{type} // 'image/jpeg';
    my $len = $o{length} // length($data);
    my $h = "--$b\r\nContent-Type: $type\r\nContent-Length: $len\r\n";

    # milliseconds, truncated as Kafka's timestamps are
    $h .= sprintf("X-Timestamp: %d.%03d\r\n", int($o{ts}),
                  int($o{ts} * 1000) % 1000) if defined $o{ts};
    $h .= $o{headers} if defined $o{headers};

    return "$h\r\n$data\r\n";
}


sub final_boundary {
    my ($b) = @_;
    return '--' . ($b // 'frame') . "--\r\n";
}


sub response_head {
    my (%o) = @_;

    my $ct = $o{content_type}
             // 'multipart/x-mixed-replace; boundary=' . ($o{boundary}
                                                          // 'frame');
    my $h = 'HTTP/1.1 ' . ($o{status} // '200 OK') . "\r\n"
            . "Content-Type: $ct\r\n"
            . "Cache-Control: no-cache\r\n";

    $h .= "Transfer-Encoding: chunked\r\n" if $o{chunked};
    $h .= "Connection: close\r\n" unless $o{chunked};

    return "$h\r\n";
}


# the chunked coding of $body, its chunks cut at the given sizes in turn

sub chunked {
    my ($body, @sizes) = @_;

    my ($out, $i) = ('', 0);

    while (length($body) > 0) {
        my $n = $sizes[$i++ % @sizes];
        my $piece = substr($body, 0, $n, '');
        $out .= sprintf("%x\r\n%s\r\n", length($piece), $piece);
    }

    return $out . "0\r\n\r\n";
}


# writes all of $data; false when the peer is gone

sub put {
    my ($sock, $data) = @_;

    while (length($data) > 0) {
        my $n = syswrite($sock, $data);
        return 0 unless defined $n && $n > 0;
        substr($data, 0, $n, '');
    }

    return 1;
}


# A scripted HTTP server.  Each connection runs in a process of its own:
# it reads the request, logs "request N <request line>" and calls
# handler->($sock, $n, $log), or writes body => BYTES and closes.  The
# server and its connections end by themselves after lifetime seconds.

sub serve {
    my (%o) = @_;

    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => 0, Proto => 'tcp',
                                       Listen => 4096, ReuseAddr => 1)
        or die "listen: $!\n";
    my $port = $listen->sockport;
    my $log = "$TMP/server-$port.log";
    my $lifetime = $o{lifetime} // 60;
    my $handler = $o{handler} // sub { put($_[0], $o{body}) };

    open(my $fh, '>', $log) or die "$log: $!\n";
    close($fh);

    my $pid = fork() // die "fork: $!\n";

    if ($pid == 0) {
        my %kids;
        my $n = 0;
        my $deadline = time() + $lifetime;

        $SIG{TERM} = sub { kill('TERM', keys %kids); _exit(0) };
        my $sel = IO::Select->new($listen);

        while (time() < $deadline) {
            while ((my $k = waitpid(-1, WNOHANG)) > 0) { delete $kids{$k} }

            next unless $sel->can_read(0.2);
            my $sock = $listen->accept() or next;
            $n++;

            my $kid = fork();
            if (!defined $kid) { close($sock); next }

            if ($kid == 0) {
                $SIG{TERM} = 'DEFAULT';
                $SIG{PIPE} = 'IGNORE';
                close($listen);
                alarm($lifetime);
                serve_one($sock, $n, $log, $handler);
                _exit(0);
            }

            $kids{$kid} = 1;
            close($sock);
        }

        kill('TERM', keys %kids);
        _exit(0);
    }

    close($listen);

    return { pid => $pid, port => $port, log => $log,
             url => "http://127.0.0.1:$port/stream" };
}


sub serve_one {
    my ($sock, $n, $log, $handler) = @_;

    my $req = '';
    my $sel = IO::Select->new($sock);

    while ($req !~ /\r\n\r\n/) {
        last unless $sel->can_read(10);
        my $got = sysread($sock, $req, 4096, length($req));
        last unless $got;
    }

    my ($line) = $req =~ /^([^\r\n]*)/;
    log_line($log, "request $n $line");

    $handler->($sock, $n, $log, $req);
    close($sock);
}


sub log_line {
    my ($log, $line) = @_;

    open(my $fh, '>>', $log) or die "$log: $!\n";
    syswrite($fh, "$line\n");
    close($fh);
}


sub server_log {
    my ($srv) = @_;

    open(my $fh, '<', $srv->{log}) or die "$srv->{log}: $!\n";
    my @lines = <$fh>;
    close($fh);
    chomp(@lines);

    return @lines;
}


# polls cond->() until it is true or timeout seconds have passed

sub wait_for {
    my ($cond, $timeout) = @_;

    my $deadline = time() + ($timeout // 10);

    while (time() < $deadline) {
        return 1 if $cond->();
        sleep(0.02);
    }

    return $cond->();
}


sub stop_server {
    my ($srv) = @_;

    kill('TERM', $srv->{pid});
    waitpid($srv->{pid}, 0);
}


# runs mjpeg-load; returns { rc, out, err, json }

sub run_load {
    my (@args) = @_;

    return run_cmd([ load_bin(), @args ]);
}


# runs a command that ends in mjpeg-load's arguments

sub run_cmd {
    my ($cmd) = @_;

    my ($out, $err) = ('', '');

    run($cmd, \undef, \$out, \$err, timeout(120));

    my $r = { rc => $? >> 8, out => $out, err => $err };

    if (grep { $_ eq '--json' } @$cmd) {
        $r->{json} = eval { decode_json($out) };
        $r->{json_error} = $@ if $@;
    }

    return $r;
}


# the --per-viewer CSV as a list of hashes, in viewer order

sub read_csv {
    my ($file) = @_;

    open(my $fh, '<', $file) or die "$file: $!\n";
    chomp(my $head = <$fh>);
    my @names = split(/,/, $head);
    my @rows;

    while (my $line = <$fh>) {
        chomp($line);
        my @f = split(/,/, $line, scalar(@names));
        my %row;
        @row{@names} = @f;
        push(@rows, \%row);
    }

    close($fh);

    return @rows;
}


1;
